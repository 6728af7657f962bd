/**
 * `agent.cache` (and `cacheInterceptor(...).cache`): what is stored, and its maintenance, in the terms
 * requests-cache users know (`cache.urls()`, `cache.delete(...)`, `cache.recreate_keys()`).
 */
import { withJoinedBody } from './stores/body.js'
import { stampGeneration } from './keys/credential-generations.js'
import { statelessRegExp } from './rules/expiry-rules.js'
import { filterAllows } from './keys/filter.js'
import type { GuardedStore } from './stores/guarded-store.js'
import { copyHeaders, normalizeRequestHeaders, type HeaderRecord, type RequestHeaders } from './rules/headers.js'
import { keyRequest, type CacheRequest } from './keys/key.js'
import { KnownUrls } from './keys/known-urls.js'
import { normalizeUrl } from './keys/urls.js'
import type { ResolvedOptions } from './options.js'
import { expiresAt, ttlSeconds } from './rules/policy.js'
import type { CacheStats, StatsCounters } from './stats.js'
import type { CacheEntry, ResponseEntry, VaryEntry } from './stores/store.js'
import { forStoredData } from './keys/redaction.js'
import { mayServeStored } from './rules/response-fields.js'
import { lookup, save } from './keys/variants.js'

/** One stored response, as `entries()` and `get()` give it. */
export interface StoredResponse {
  /** The key it is stored under. */
  key: string
  /** The method of the request it answered. */
  method: string
  /** The normalised URL of the request it answered (ignored parameters removed, redacted values as digests). */
  url: string
  /** The response's status code. */
  status: number
  /** The response's fields as stored, lower-case names. */
  headers: HeaderRecord
  /** The whole body, as received (still content-coded). */
  body: Uint8Array
  /** The headers of the request it answered, ignored and redacted values as digests. */
  requestHeaders: RequestHeaders
  /** When it was received, or last renewed by a 304. */
  createdAt: Date
  /** When it stops being fresh. */
  expires: Date
}

/** What `delete()` removes: every stored response for a URL, those whose URL a RegExp matches, or by age. */
export type DeleteTarget = string | RegExp | { expired: true } | { olderThan: number }

/**
 * The stored contents of one cache. A request is never failed by its store; these calls are the user
 * asking about the store itself, so a store that fails makes them reject (the failure is counted in
 * `stats.errors` too). An entry that cannot be read is skipped.
 */
export class CacheInspector {
  readonly #store: GuardedStore
  readonly #options: ResolvedOptions
  readonly #stats: StatsCounters

  constructor(store: GuardedStore, options: ResolvedOptions, stats: StatsCounters) {
    this.#store = store
    this.#options = options
    this.#stats = stats
  }

  /** Counts since the cache was created; a new snapshot on every read. */
  get stats(): CacheStats {
    return this.#stats.snapshot(this.#store.evictions)
  }

  /** The distinct URLs of the stored responses, sorted. */
  async urls(): Promise<string[]> {
    const urls = new Set<string>()
    for await (const response of this.entries()) urls.add(response.url)
    return [...urls].sort()
  }

  /**
   * Every stored response that a request could be served (each `Vary` variant on its own): not one an
   * unsafe request invalidated for other users (RFC 9111 §4.4). In shared mode, not one holding `Set-Cookie`
   * (stored by a private cache on the same store): the shared cache counts it as not stored, and the next
   * response replaces it (issue #16). Shown without the field, it would be a response this cache never
   * serves; shown with it, one user's cookie to whoever inspects. `delete()` and `clear()` still remove it.
   */
  async *entries(): AsyncGenerator<StoredResponse> {
    // A response to a request with credentials is served only while its URL's generation record holds its
    // token (credential-generations.ts): one an unsafe request invalidated is not listed either. Tokens are
    // random, so the records found anywhere in the store tell which are current.
    const currentGenerations = new Set<string>()
    const stamped: Array<[string, ResponseEntry]> = []
    for await (const [key, entry] of this.#storedEntries()) {
      if (entry.kind === 'generation') currentGenerations.add(entry.generation)
      if (entry.kind !== 'response' || !mayServeStored(entry.headers, this.#options)) continue
      if (entry.generation === undefined) yield toStoredResponse(key, entry)
      else stamped.push([key, entry])
    }
    for (const [key, entry] of stamped) if (currentGenerations.has(entry.generation!)) yield toStoredResponse(key, entry)
  }

  /**
   * The stored response a request for `url` with this method and these headers would be served, if any
   * (fresh or not): found through the key function and `Vary`, and let through by `filter`,
   * `urlsExpireAfter` and, in shared mode, `Set-Cookie` (see `entries()`) as a request would be.
   */
  async get(url: string, request: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {}): Promise<StoredResponse | undefined> {
    const keyed = keyRequest(this.#request(url, request), this.#options)
    if (this.#options.expiryRules?.(keyed.storedUrl) === 'no-store') return undefined
    const found = await lookup(this.#store, keyed)
    if (found.found !== 'response' || !mayServeStored(found.entry.headers, this.#options)) return undefined
    if (!filterAllows(this.#options.filter, keyed, found.entry, this.#store)) return undefined
    return toStoredResponse(found.storedKey, found.entry) // the key entries() gives it, a variant's own under Vary
  }

  /**
   * Removes stored responses: every one for a URL (any method, any variant), those whose stored URL a
   * RegExp matches, those past their freshness lifetime (`{ expired: true }`), or those stored longer
   * than `olderThan` milliseconds ago. Resolves to how many were removed.
   */
  async delete(target: DeleteTarget): Promise<number> {
    const matches = this.#matcher(target)
    const removed = new Set<string>()
    const varyEntries: Array<[string, VaryEntry]> = []
    for await (const [key, entry] of this.#storedEntries()) {
      if (entry.kind === 'vary') varyEntries.push([key, entry])
      else if (entry.kind === 'response' && matches(entry)) {
        await this.#store.administer('delete', (store) => store.delete(key))
        removed.add(key)
      }
    }
    // A URL's Vary record lists its variants: drop the removed ones, and the record once none is left.
    for (const [key, entry] of varyEntries) {
      const variants = entry.variants.filter((variantKey) => !removed.has(variantKey))
      if (variants.length === entry.variants.length) continue
      if (variants.length === 0) await this.#store.administer('delete', (store) => store.delete(key))
      else await this.#store.administer('set', (store) => store.set(key, { ...entry, variants }))
    }
    return removed.size
  }

  /** Removes everything. */
  async clear(): Promise<void> {
    await this.#store.administer('clear', (store) => store.clear())
  }

  /**
   * Stores every response again under the key the current key function and matching options give it
   * (requests-cache's `recreate_keys()`), from the request URL, headers and body kept with each. Run it
   * after changing `key`, `ignoredParameters`, `redactedParameters` or `matchHeaders` on a store that
   * outlives the process. Resolves to how many responses moved. Entries kept under a key that now names
   * nothing are removed. A redacted value is kept as its digest, and keyed by it again: entries of two
   * credentials never merge. One whose name is no longer redacted keeps its digest for a value, and so no
   * longer matches a request (it expires in time); nor is the value of a newly redacted name known of
   * entries stored while it was ignored.
   */
  async recreateKeys(): Promise<number> {
    const stored: Array<[string, CacheEntry]> = []
    for await (const pair of this.#storedEntries()) stored.push(pair)
    const parameters = forStoredData(this.#options.parameters)
    const keyOptions = { ...this.#options, parameters, knownUrls: new KnownUrls(parameters) }
    const primaryKeys = new Set<string>()
    const liveGenerations = new Set(stored.flatMap(([, entry]) => (entry.kind === 'generation' ? [entry.generation] : [])))
    let moved = 0
    for (const [key, entry] of stored) {
      if (entry.kind !== 'response') continue
      const request: CacheRequest = {
        method: entry.method,
        url: entry.url,
        headers: entry.requestHeaders,
        ...(entry.requestBody === undefined ? {} : { body: entry.requestBody }),
      }
      let keyed
      try {
        keyed = keyRequest(request, keyOptions)
      } catch (error) {
        this.#store.recordFailure('key', error) // a key function that fails for it leaves the entry where it is
        continue
      }
      primaryKeys.add(keyed.key)
      const renewed: ResponseEntry = { ...entry, url: keyed.storedUrl, requestHeaders: keyed.storedHeaders }
      if (keyed.storedBody !== undefined) renewed.requestBody = keyed.storedBody
      if (!needsMove(key, keyed.key, entry, renewed)) continue
      await this.#store.administer('delete', (store) => store.delete(key))
      // A response to a request with credentials moves into its URL's generation under the new keys if it
      // was in its URL's current one; one an unsafe request invalidated stays out of every generation.
      const isLive = renewed.generation !== undefined && liveGenerations.has(renewed.generation)
      await save(this.#store, keyed.key, isLive ? await stampGeneration(this.#store, keyed, renewed) : renewed)
      moved++
    }
    // Vary records under keys that no response is stored under any longer.
    for (const [key, entry] of stored) {
      if (entry.kind === 'vary' && !primaryKeys.has(key)) await this.#store.administer('delete', (store) => store.delete(key))
    }
    return moved
  }

  /**
   * Each stored key with its entry. Keys whose value is not an entry (gone since, unreadable, or, in a Redis
   * shared with other data, not the cache's) are skipped and left alone: looking never deletes.
   */
  async *#storedEntries(): AsyncGenerator<[string, CacheEntry]> {
    const keys = await this.#store.administer('keys', (store) => store.keys())
    for await (const key of keys) {
      const entry = await this.#store.peek(key)
      if (entry !== undefined) yield [key, entry]
    }
  }

  #request(url: string, request: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array }): CacheRequest {
    const method = (request.method ?? 'GET').toUpperCase()
    const body = typeof request.body === 'string' ? Buffer.from(request.body) : request.body
    const cacheRequest: CacheRequest = { method, url: new URL(url).href, headers: normalizeRequestHeaders(request.headers) }
    if (method !== 'GET' && method !== 'HEAD') cacheRequest.body = body ?? new Uint8Array(0)
    return cacheRequest
  }

  #matcher(target: DeleteTarget): (entry: ResponseEntry) => boolean {
    if (typeof target === 'string') {
      // A URL as urls() lists it, its redacted values as digests, names the same entries as the URL requested.
      const url = normalizeUrl(target, forStoredData(this.#options.parameters))
      return (entry) => entry.url === url
    }
    if (target instanceof RegExp) {
      const regExp = statelessRegExp(target)
      return (entry) => regExp.test(entry.url)
    }
    if (target !== null && typeof target === 'object') {
      const { expired, olderThan } = target as { expired?: unknown; olderThan?: unknown }
      if (expired === true) return (entry) => ttlSeconds(entry, Date.now()) <= 0
      if (typeof olderThan === 'number' && olderThan >= 0) return (entry) => entry.createdAt < Date.now() - olderThan
    }
    throw new TypeError(`cache.delete() takes a URL, a RegExp, { expired: true } or { olderThan: milliseconds }, received ${String(target)}`)
  }
}

/** Whether a response must be stored again: under another key, or with its request data normalised anew. */
function needsMove(oldKey: string, newKey: string, entry: ResponseEntry, renewed: ResponseEntry): boolean {
  const atKey = oldKey === newKey || oldKey.startsWith(`${newKey}:`) // a variant lives under its URL's key
  return !atKey || entry.url !== renewed.url || entry.requestHeaders !== renewed.requestHeaders
}

/**
 * A copy of a stored response for users' code: the store's own entry object (MemoryStore's, or one a byte
 * store keeps decoded) is what later hits serve, so a change to what is handed out must not reach it.
 */
function toStoredResponse(key: string, entry: ResponseEntry): StoredResponse {
  const fields = {
    key,
    method: entry.method,
    url: entry.url,
    status: entry.status,
    headers: copyHeaders(entry.headers),
    requestHeaders: { ...entry.requestHeaders },
    createdAt: new Date(entry.createdAt),
    expires: new Date(expiresAt(entry)),
  }
  // As chunks, so that the body is joined into a new buffer (a copy), and only if it is read.
  return withJoinedBody(fields, Array.isArray(entry.body) ? entry.body : [entry.body as Uint8Array])
}

