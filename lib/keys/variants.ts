/**
 * How the responses for one key are laid out in the store. A response without `Vary` is stored under the
 * key itself. Responses with `Vary` leave a `VaryEntry` under the key, naming the request headers that
 * select a variant and listing the variants stored since, and each variant under a key derived from
 * those headers' values. Only listed variants are served. Values are those of the request's stored headers,
 * where a redacted or ignored header's value is its digest (issue #16): never the credential itself.
 */
import { isCurrent, readGeneration, stampGeneration } from './credential-generations.js'
import type { GuardedStore } from '../stores/guarded-store.js'
import { withoutFields, type RequestHeaders } from '../rules/headers.js'
import { createVariantKey, type KeyedRequest } from './key.js'
import { andThen, isPromise, type MaybePromise } from '../stores/maybe-promise.js'
import { pickHeaders } from '../rules/directives.js'
import { COOKIE_SETTING_FIELDS } from '../rules/response-fields.js'
import { usefulUntil } from '../rules/retention.js'
import { ENTRY_VERSION, type CacheEntry, type ResponseEntry, type VaryEntry } from '../stores/store.js'

export type Lookup =
  /** `storedKey`: the key the response is stored under (a variant's own key, below the URL's). */
  | { found: 'response'; entry: ResponseEntry; storedKey: string }
  /** `varyNames`: the request headers that select a variant, when a `VaryEntry` said so. */
  | { found: 'nothing'; missReason: 'uri-miss' | 'vary-miss'; varyNames?: string[] }

/** Variants listed per URL, at most; the oldest drops out of the list (and so out of reach) first. */
const MAX_VARIANTS = 64

/**
 * Finds the stored response a request would be served, following a `VaryEntry` to the matching variant:
 * under its key, else (a request with credentials) under the key of the same request without them, as a
 * cache without redaction would serve it (cache-tests `other-cookie`). A response found there is never
 * written back there for this request: what it brings is stored under the request's own key.
 */
export function lookup(store: GuardedStore, request: KeyedRequest): MaybePromise<Lookup> {
  const url = urlToMatch(request)
  const { fallbackKey } = request
  if (fallbackKey === undefined) return lookupKey(store, request.key, request.storedHeaders, url)
  const own = currentOnly(lookupKey(store, request.key, request.storedHeaders, url), readGeneration(store, fallbackKey))
  const withoutCredentials = (): MaybePromise<Lookup> => andThen(lookupKey(store, fallbackKey, request.storedHeaders, url), withoutCookieSetting)
  if (!isPromise(own)) return own.found === 'response' ? own : firstResponse(own, withoutCredentials())
  // An asynchronous store is asked both at once, so that a slow one costs one wait (storeTimeoutMs), not two.
  const other = withoutCredentials()
  return own.then((found) => firstResponse(found, other))
}

/**
 * A response stored for a request without credentials, as it answers one with them: without the cookie the
 * origin set for whoever made the stored request (an anonymous visitor's session would otherwise replace
 * the caller's own, issue #16 review). The stored entry itself is left as it is.
 */
function withoutCookieSetting(found: Lookup): Lookup {
  if (found.found !== 'response' || !COOKIE_SETTING_FIELDS.some((name) => found.entry.headers[name] !== undefined)) return found
  return { ...found, entry: { ...found.entry, headers: withoutFields(found.entry.headers, COOKIE_SETTING_FIELDS) } }
}

/**
 * What was found under a request's own key, when the request has credentials: a response of an earlier
 * generation of its URL (an unsafe request invalidated it since, RFC 9111 §4.4) is not found.
 */
function currentOnly(found: MaybePromise<Lookup>, generation: MaybePromise<string | undefined>): MaybePromise<Lookup> {
  return andThen(found, (own) =>
    own.found !== 'response' ? own : andThen(generation, (current): Lookup => (isCurrent(own.entry, current) ? own : { found: 'nothing', missReason: 'uri-miss' })),
  )
}

/** `found` if it is a response, else `other` if that is one, else what `found` says was missing. */
function firstResponse(found: Lookup, other: MaybePromise<Lookup>): MaybePromise<Lookup> {
  if (found.found === 'response') return found
  return andThen(other, (otherFound) => (otherFound.found === 'response' ? otherFound : found))
}

/** `url`, when given, is the normalised URL the response must have been stored for. */
function lookupKey(store: GuardedStore, key: string, headers: RequestHeaders, url: string | undefined): MaybePromise<Lookup> {
  const stored = store.get(key)
  // A store that answers at once (memory) is read without a callback made for it: this is on every hit.
  return isPromise(stored) ? stored.then((entry) => lookedUp(store, entry, key, headers, url)) : lookedUp(store, stored, key, headers, url)
}

/** What `lookupKey` found in `entry`, the value under `key`, following a `VaryEntry` to the variant it selects. */
function lookedUp(store: GuardedStore, entry: CacheEntry | undefined, key: string, headers: RequestHeaders, url: string | undefined): MaybePromise<Lookup> {
  if (entry === undefined || entry.kind === 'generation') return NOTHING_STORED
  if (entry.kind === 'response') return matchResponse(entry, key, url, 'uri-miss')
  const varyHeaders = pickHeaders(headers, entry.names)
  const variantKey = createVariantKey(key, varyHeaders)
  const varyMiss: Lookup = { found: 'nothing', missReason: 'vary-miss', varyNames: entry.names }
  if (!entry.variants.includes(variantKey)) return varyMiss
  return andThen(store.get(variantKey), (variant) =>
    variant?.kind === 'response' && sameValues(variant.varyHeaders, varyHeaders) ? matchResponse(variant, variantKey, url, 'vary-miss') : varyMiss,
  )
}

/** Nothing stored under a URL's key: one record for every such lookup, never written to. */
const NOTHING_STORED: Lookup = Object.freeze({ found: 'nothing', missReason: 'uri-miss' })

/** A stored response for another URL than the one expected (a key collision) is never served. */
function matchResponse(entry: ResponseEntry, storedKey: string, url: string | undefined, missReason: 'uri-miss' | 'vary-miss'): Lookup {
  return url === undefined || entry.url === url ? { found: 'response', entry, storedKey } : { found: 'nothing', missReason }
}

/**
 * Stores a response where `lookup` will find it. Saves and forgets of one key take turns (see
 * `GuardedStore.writeInTurn`), as each reads the `VaryEntry` and writes it back.
 */
export function save(store: GuardedStore, key: string, entry: ResponseEntry): MaybePromise<void> {
  return store.writeInTurn(key, () => saveNow(store, key, entry))
}

/**
 * `save`'s writes, within a turn. Every response is stored through here, so here it is told until when it
 * is of use, for stores that expire or purge entries (`retainUntil`). The entries given are the cache's own,
 * made for this save (a new response, or a copy renewed or re-keyed), so the field is set in place.
 */
function saveNow(store: GuardedStore, key: string, entry: ResponseEntry): MaybePromise<void> {
  entry.usefulUntil = usefulUntil(entry)
  const varyHeaders = entry.varyHeaders
  return varyHeaders === undefined ? store.set(key, entry) : saveVariant(store, key, entry, varyHeaders)
}

function saveVariant(store: GuardedStore, key: string, entry: ResponseEntry, varyHeaders: Record<string, string | null>): MaybePromise<void> {
  const names = Object.keys(varyHeaders)
  const variantKey = createVariantKey(key, varyHeaders)
  return andThen(store.get(key), (existing) => {
    // Variants listed under the same header names stay listed; a change of names starts a new list.
    const kept = existing?.kind === 'vary' && existing.names.join() === names.join() ? existing : undefined
    const listed = kept?.variants.filter((listedKey) => listedKey !== variantKey).slice(-(MAX_VARIANTS - 1)) ?? []
    const varyEntry: VaryEntry = {
      version: ENTRY_VERSION,
      kind: 'vary',
      names,
      variants: [...listed, variantKey],
      createdAt: entry.createdAt,
      // The record is of use as long as any variant it lists: a year-long variant needs it for a year.
      usefulUntil: Math.max(usefulUntil(entry), kept === undefined ? 0 : usefulUntil(kept)),
    }
    return andThen(store.set(variantKey, entry), () => store.set(key, varyEntry))
  })
}

/**
 * Saves `renewed`, the response `stored` made fresh again by a 304, unless another response was stored for
 * the request since `stored` was read: a 304 that arrives late must not put an older response back over a
 * newer one, or over its deletion; nor need several 304s for one entry each write it again. The look and
 * the save take one turn, so no save of this cache comes between them (another process's still may).
 */
export function saveRenewed(store: GuardedStore, key: string, request: KeyedRequest, stored: ResponseEntry, renewed: ResponseEntry): MaybePromise<void> {
  const own = ownedBy(request, renewed)
  return store.writeInTurn(key, () =>
    andThen(lookup(store, { ...request, key }), (found) => {
      if (found.found !== 'response' || found.entry.createdAt !== stored.createdAt) return undefined
      return andThen(stampGeneration(store, request, own), (stamped) => saveNow(store, key, stamped))
    }),
  )
}

/**
 * A renewed entry as stored for the request that renewed it, under that request's key: with its stored
 * headers (which `recreateKeys()` keys it by again: a response stored without credentials, renewed for a
 * request with them, stays that request's), and a `Vary` selection read from them (a 304 that changed
 * `Vary` had it picked from the headers as sent, credentials included, by validation.ts).
 */
function ownedBy(request: KeyedRequest, renewed: ResponseEntry): ResponseEntry {
  const entry = { ...renewed, requestHeaders: request.storedHeaders }
  if (renewed.varyHeaders !== undefined) entry.varyHeaders = pickHeaders(request.storedHeaders, Object.keys(renewed.varyHeaders))
  return entry
}

/**
 * The URL a stored response must have been stored for to be served for `request`: with the default key
 * function, where equal keys for different URLs would be a digest collision (a custom key decides itself).
 */
export function urlToMatch(request: KeyedRequest): string | undefined {
  return request.checksUrl ? request.storedUrl : undefined
}

/** Deletes everything stored for a key: the response, or the `VaryEntry` and the variants it lists. */
export function forget(store: GuardedStore, key: string): MaybePromise<void> {
  return store.writeInTurn(key, () =>
    andThen(store.get(key), (entry) => {
      const variantDeletions = entry?.kind === 'vary' ? entry.variants.map((variantKey) => store.delete(variantKey)) : []
      const deletion = store.delete(key)
      const pending = [...variantDeletions, deletion].filter((result) => result instanceof Promise)
      if (pending.length > 0) return Promise.all(pending).then(() => undefined)
    }),
  )
}

// RFC 9111 §4.1: a header absent from both requests matches; absent in one only does not.
function sameValues(stored: Record<string, string | null> | undefined, presented: Record<string, string | null>): boolean {
  if (stored === undefined) return false
  for (const name in presented) if (stored[name] !== presented[name]) return false
  return true
}
