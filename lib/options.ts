import type { Agent, Dispatcher } from 'undici'
import { compileExpiryRules, type ExpiryRules, type UrlExpiryRule } from './rules/expiry-rules.js'
import type { ResponseFilter } from './keys/filter.js'
import { createKey, defaultKeyOf, type CacheRequest } from './keys/key.js'
import { KnownUrls } from './keys/known-urls.js'
import { DEFAULT_REDACTED_PARAMETERS, parameterRules, type ParameterRules } from './keys/redaction.js'
import type { CacheStore } from './stores/store.js'
import { checkOptionsObject, checkPositiveInteger, describe } from './option-checks.js'
import { PendingBytes } from './flow/pending-bytes.js'
import { MemoryStore } from './stores/memory-store.js'

const MIB = 1024 * 1024

/** Options of `cacheInterceptor()` and `CachingAgent`. */
export interface CacheOptions {
  /** Where entries live. Default: a new `MemoryStore()` (64 MiB). */
  store?: CacheStore
  /**
   * Apply the rules of a shared cache (RFC 9111: `s-maxage`, `proxy-revalidate`, `private` and
   * `Authorization` prevent storing). Default `false`: a private cache, as in a browser.
   */
  shared?: boolean
  /**
   * Methods whose responses are stored and served. Default `['GET', 'HEAD']`. Any other method listed
   * (`'POST'`, `'QUERY'`) is cached with its request body in the key (bodies up to 1 MiB; a larger one, or
   * a `FormData` or other multipart body, goes to the origin uncached), and as the user's choice it does not invalidate what
   * is stored for its URL, as unsafe methods otherwise do (RFC 9111 §4.4).
   */
  methods?: readonly string[]
  /**
   * A custom key function: the string under which a request's response is stored. Requests with the
   * same key share a response (`Vary` still selects among variants), whatever their URLs: the function
   * owns that choice. `helpers.createKey` is the default key function with this cache's `ignoredParameters`,
   * `redactedParameters` and `matchHeaders`, for a function that only adjusts the request. The function is
   * given the request as made, credentials included: a key it makes of them is stored and shown as it is,
   * and requests it gives one key share a response whatever their credentials. A function that throws or
   * returns something other than a non-empty string sends that request to the origin uncached, counted in
   * `stats.errors`. Default: `createKey`.
   */
  key?: (request: CacheRequest, helpers: KeyHelpers) => string
  /**
   * Names left out of matching wherever they appear (query parameters, JSON and form body members, matched
   * request headers, credentials), compared case-insensitively, so that requests that differ only in them
   * share an entry (requests-cache's `ignored_parameters`); and redacted from what is stored: removed from
   * the stored URL and body, a header's value kept as a digest (a response whose `Vary` names it is still
   * selected by it). Default: none.
   */
  ignoredParameters?: readonly string[]
  /**
   * Names whose values never reach a store, `entries()`, `urls()`, `cache.get()`, `Cache-Status` or a log,
   * yet still tell requests apart, wherever they appear (query parameters, JSON and form body members,
   * request headers), compared case-insensitively: each value is kept and keyed as its SHA-256 digest, and
   * a request header named here is part of the key when present, so two users' credentials never share an
   * entry (issue #16). A request with such headers that finds nothing under its key may be answered by the
   * response stored for the same request without them (cache-tests `other-cookie`). In a shared cache
   * `Authorization` is not keyed: RFC 9111 §3.5 lets only responses the origin marks `public`, `s-maxage`
   * or `must-revalidate` be stored for it, and those are for everyone. A name also in `ignoredParameters`
   * is ignored. A request header named nowhere (here, `matchHeaders` or the response's `Vary`) is not part
   * of the key. Default: `DEFAULT_REDACTED_PARAMETERS` (Authorization, Proxy-Authorization, Cookie,
   * X-API-Key, Api-Key, X-Auth-Token, X-Access-Token, X-Session-Token, Private-Token, Job-Token,
   * X-Goog-Api-Key, Ocp-Apim-Subscription-Key, X-Vault-Token, X-Amz-Security-Token, X-Amz-Credential,
   * X-Amz-Signature, access_token, refresh_token, id_token, client_secret, api_key, apikey, password); a
   * list given replaces it, but
   * `Authorization`, `Proxy-Authorization` and `Cookie` are credentials whatever the list says (name them
   * in `ignoredParameters` to merge them).
   */
  redactedParameters?: readonly string[]
  /**
   * Request headers that become part of the key besides those `Vary` names: `true` for all of them, or a
   * list of names (case-insensitive; values compared with surrounding whitespace and list spacing
   * normalised; redacted ones by their digest). Default `false`. A list may not name an ignored parameter
   * (a `TypeError` says so); `true` matches every header but those.
   */
  matchHeaders?: boolean | readonly string[]
  /**
   * Whether a response may be cached, asked of every new response once its whole body has arrived (`false`:
   * not stored) and of every stored response before it is served (`false`: treated as not stored). A
   * filter that throws counts as `false`, and as an error in `stats.errors`. It is shown a copy of the
   * response's fields, and its body as stored: read it, do not write to it. Default: none.
   */
  filter?: ResponseFilter
  /**
   * Seconds of freshness for storable responses that carry no explicit freshness (no `max-age`, no
   * `s-maxage` in shared mode, no `Expires`, no `no-cache`), instead of RFC 9111's heuristic (§4.2.2).
   * Server headers always win. Default: none (the heuristic: 10% of the time since `Last-Modified`).
   */
  defaultTtl?: number
  /**
   * Per-URL freshness, first match wins, checked before `defaultTtl`: `[pattern, ttl]` pairs where
   * `pattern` is a glob on host and path without the scheme (`'*.example.com/static/*'`, `'localhost/api/**'`;
   * the port may be left out, the query takes no part, a host alone covers all its paths) or a `RegExp`
   * tested on the whole URL, and `ttl` is seconds
   * (used as `defaultTtl` is), `'never'` (fresh for good when the response has no explicit freshness) or
   * `'no-store'` (never stored, and nothing stored for it is served). Default: none.
   */
  urlsExpireAfter?: readonly UrlExpiryRule[]
  /**
   * The response statuses that may be stored (requests-cache's `allowable_codes`). Default: those RFC 9111
   * lets a cache store. A status outside the list is never stored. A listed status that RFC 9111 stores
   * only with explicit freshness (500, say) is stored too when `defaultTtl` or `urlsExpireAfter` gives it
   * freshness: listing it is that choice. 1xx, 206 and 304 cannot be listed.
   */
  allowedStatuses?: readonly number[]
  /**
   * How long a call to the store may take before the cache gives up on it (a read becomes a miss, a write
   * "not stored") and counts an error, in milliseconds. A store that answers synchronously (MemoryStore)
   * is never timed. Default 1000.
   */
  storeTimeoutMs?: number
  /**
   * The name this cache uses in the RFC 9211 `Cache-Status` response field, a token.
   * Default `'undici-http-cache'`; `false` adds no field.
   */
  cacheStatus?: string | false
  /**
   * Serve a stale stored response when the origin fails (no response, or 500, 502, 503, 504), RFC 5861 §4.
   * Default: only as the response's or the request's `stale-if-error` directive allows. `true`: at any
   * staleness; a number: up to that many seconds stale (or longer where a directive allows); `false`: never.
   * `must-revalidate`, `no-cache` (and in shared mode `proxy-revalidate`, `s-maxage`) always forbid it.
   */
  staleIfError?: boolean | number
  /**
   * Concurrent requests that would each go to the origin for the same response (a miss, or a stale entry
   * to revalidate) send one; the others wait and are then served from what it stored. Default `true`.
   */
  coalesce?: boolean
}

/** What a custom key function is given besides the request. */
export interface KeyHelpers {
  /** The default key function, with this cache's `ignoredParameters`, `redactedParameters` and `matchHeaders`. */
  createKey(request: CacheRequest): string
}

/** Options of `CachingAgent`: the cache's options, and the dispatcher the cache sits in front of. */
export interface CachingAgentOptions extends CacheOptions {
  /** The dispatcher that reaches the origin. Default: `new Agent(agentOptions)`. */
  dispatcher?: Dispatcher
  /** Options for the default `Agent`, when no `dispatcher` is given. */
  agentOptions?: Agent.Options
}

/** Options after checking: every default filled in, trusted by the rest of the code. */
export interface ResolvedOptions {
  store: CacheStore
  shared: boolean
  methods: ReadonlySet<string>
  /** What `ignoredParameters` and `redactedParameters` make of names (lower-case). */
  parameters: ParameterRules
  matchHeaders: boolean | readonly string[]
  /** The custom key function bound to its helpers, when one was given. */
  customKey: ((request: CacheRequest) => string) | undefined
  filter: ResponseFilter | undefined
  /** The configured ttl of a URL, when `defaultTtl` or `urlsExpireAfter` is given. */
  expiryRules: ExpiryRules | undefined
  allowedStatuses: ReadonlySet<number> | undefined
  storeTimeoutMs: number
  cacheStatus: string | false
  staleIfError: boolean | number | undefined
  coalesce: boolean
  /** The largest entry the cache buffers for the store, in bytes. */
  maxEntrySize: number
  /** The bytes all responses on their way to the store may hold together (the store's `maxSize`). */
  pendingBytes: PendingBytes
  /** URL work remembered (derived from `parameters`): see key.ts. */
  knownUrls: KnownUrls
}

const DEFAULT_METHODS = ['GET', 'HEAD'] as const
const DEFAULT_CACHE_STATUS = 'undici-http-cache'
const DEFAULT_STORE_TIMEOUT_MS = 1000
/** Used when a custom store does not say what it accepts. */
const DEFAULT_MAX_ENTRY_SIZE = 8 * MIB
/** What responses on their way to a store that gives no `maxSize` may hold together: MemoryStore's default. */
const DEFAULT_MAX_PENDING_BYTES = 64 * MIB

const CACHE_OPTION_NAMES = [
  'store',
  'shared',
  'methods',
  'key',
  'ignoredParameters',
  'redactedParameters',
  'matchHeaders',
  'filter',
  'defaultTtl',
  'urlsExpireAfter',
  'allowedStatuses',
  'storeTimeoutMs',
  'cacheStatus',
  'staleIfError',
  'coalesce',
]
const AGENT_OPTION_NAMES = ['dispatcher', 'agentOptions']

// RFC 9651 §3.3.4: the cache's name in Cache-Status is written as a token.
const TOKEN = /^[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*$/
// RFC 9110 §5.6.2: method and field names are tokens.
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Checks cache options and fills in defaults. Every option `TypeError` of the cache is thrown here. */
export function resolveOptions(input: unknown, allowedExtraNames: readonly string[] = []): ResolvedOptions {
  const options = checkOptionsObject('options', input, [...CACHE_OPTION_NAMES, ...allowedExtraNames])
  const store = options.store === undefined ? new MemoryStore() : checkStore(options.store)
  const shared = checkBoolean('options.shared', options.shared ?? false)
  const parameters = parameterRules({
    ignored: checkNames('options.ignoredParameters', options.ignoredParameters ?? []),
    redacted: checkNames('options.redactedParameters', options.redactedParameters ?? DEFAULT_REDACTED_PARAMETERS),
    shared,
  })
  const matchHeaders = checkMatchHeaders(options.matchHeaders ?? false)
  const maxEntrySize = store.maxEntrySize ?? DEFAULT_MAX_ENTRY_SIZE
  // Ignored parameters stay out of keys, matched headers included: a header named in both would silently
  // not be matched. (A redacted one is matched, by its digest.)
  const contradicted = Array.isArray(matchHeaders) ? matchHeaders.find((name) => parameters.ignored.has(name)) : undefined
  if (contradicted !== undefined) {
    throw new TypeError(`options.matchHeaders names "${contradicted}", which options.ignoredParameters leaves out of keys: pass ignoredParameters without it`)
  }
  return {
    store,
    shared,
    methods: checkMethods(options.methods ?? DEFAULT_METHODS),
    parameters,
    matchHeaders,
    customKey: bindKeyFunction(options.key, { rules: parameters, matchHeaders }),
    filter: checkFilter(options.filter),
    expiryRules: compileExpiryRules(checkExpiryRules(options.urlsExpireAfter ?? []), checkDefaultTtl(options.defaultTtl)),
    allowedStatuses: checkAllowedStatuses(options.allowedStatuses),
    storeTimeoutMs: checkPositiveInteger('options.storeTimeoutMs', options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS, 'milliseconds'),
    cacheStatus: checkCacheStatus(options.cacheStatus ?? DEFAULT_CACHE_STATUS),
    staleIfError: checkStaleIfError(options.staleIfError),
    coalesce: checkBoolean('options.coalesce', options.coalesce ?? true),
    maxEntrySize,
    // Never less than one entry's worth, so that any response the store would take may be copied.
    pendingBytes: new PendingBytes(Math.max(maxEntrySize, store.maxSize ?? DEFAULT_MAX_PENDING_BYTES)),
    knownUrls: new KnownUrls(parameters),
  }
}

/** Checks `CachingAgent` options: the cache's, plus `dispatcher` or `agentOptions` (not both). */
export function resolveAgentOptions(input: unknown): {
  cache: ResolvedOptions
  dispatcher?: Dispatcher
  agentOptions?: Agent.Options
} {
  const cache = resolveOptions(input, AGENT_OPTION_NAMES)
  const options = (input ?? {}) as Record<string, unknown>
  const { dispatcher, agentOptions } = options
  if (dispatcher !== undefined && typeof (dispatcher as Partial<Dispatcher>).dispatch !== 'function') {
    throw new TypeError(`options.dispatcher must be an undici Dispatcher, received ${describe(dispatcher)}`)
  }
  if (agentOptions !== undefined && (agentOptions === null || typeof agentOptions !== 'object')) {
    throw new TypeError(`options.agentOptions must be an object of undici Agent options, received ${describe(agentOptions)}`)
  }
  if (dispatcher !== undefined && agentOptions !== undefined) {
    throw new TypeError('options.agentOptions cannot be used with options.dispatcher: configure that dispatcher instead')
  }
  return {
    cache,
    ...(dispatcher === undefined ? {} : { dispatcher: dispatcher as Dispatcher }),
    ...(agentOptions === undefined ? {} : { agentOptions: agentOptions as Agent.Options }),
  }
}

function checkStore(store: unknown): CacheStore {
  const candidate = store as Partial<CacheStore> | null
  const missing = ['get', 'set', 'delete', 'keys', 'clear'].filter(
    (method) => typeof candidate?.[method as keyof CacheStore] !== 'function',
  )
  if (candidate === null || typeof candidate !== 'object' || missing.length > 0) {
    throw new TypeError(
      `options.store must implement CacheStore (get, set, delete, keys, clear), received ${describe(store)}` +
        (missing.length > 0 && candidate !== null && typeof candidate === 'object' ? ` missing ${missing.join(', ')}` : ''),
    )
  }
  const { maxEntrySize, maxSize } = candidate
  if (maxEntrySize !== undefined) checkPositiveInteger('options.store.maxEntrySize', maxEntrySize, 'bytes')
  if (maxSize !== undefined) checkPositiveInteger('options.store.maxSize', maxSize, 'bytes')
  return candidate as CacheStore
}

function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, received ${describe(value)}`)
  return value
}

function checkMethods(value: unknown): ReadonlySet<string> {
  if (!Array.isArray(value) || value.some((method) => typeof method !== 'string' || !HTTP_TOKEN.test(method))) {
    throw new TypeError(`options.methods must be an array of method names, received ${describe(value)}`)
  }
  const methods = new Set(value.map((method: string) => method.toUpperCase()))
  if (methods.has('CONNECT')) throw new TypeError('options.methods cannot hold "CONNECT": a tunnel has no response to cache')
  return methods
}

function checkNames(name: string, value: unknown): readonly string[] {
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || item === '')) {
    throw new TypeError(`${name} must be an array of names, received ${describe(value)}`)
  }
  return value as string[]
}

function checkMatchHeaders(value: unknown): boolean | readonly string[] {
  if (typeof value === 'boolean') return value
  if (Array.isArray(value) && value.every((item) => typeof item === 'string' && HTTP_TOKEN.test(item))) {
    return value.map((name: string) => name.toLowerCase())
  }
  throw new TypeError(`options.matchHeaders must be true, false or an array of header names, received ${describe(value)}`)
}

function bindKeyFunction(
  value: unknown,
  keyOptions: { rules: ParameterRules; matchHeaders: boolean | readonly string[] },
): ((request: CacheRequest) => string) | undefined {
  // `key: createKey` names the default: keys made with this cache's parameters and matchHeaders (called as a
  // key function, createKey would take the helpers for its options and use its own defaults).
  if (value === undefined || value === createKey) return undefined
  if (typeof value !== 'function') throw new TypeError(`options.key must be a function (request, helpers) => string, received ${describe(value)}`)
  const helpers: KeyHelpers = { createKey: (request) => defaultKeyOf(request, keyOptions) }
  return (request) => value(request, helpers)
}

function checkFilter(value: unknown): ResponseFilter | undefined {
  if (value === undefined || typeof value === 'function') return value as ResponseFilter | undefined
  throw new TypeError(`options.filter must be a function (request, response) => boolean, received ${describe(value)}`)
}

function checkDefaultTtl(value: unknown): number | undefined {
  if (value === undefined || isSeconds(value)) return value
  throw new TypeError(`options.defaultTtl must be a non-negative number of seconds, received ${describe(value)}`)
}

function checkExpiryRules(value: unknown): readonly UrlExpiryRule[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`options.urlsExpireAfter must be an array of [pattern, ttl] pairs, received ${describe(value)}`)
  }
  value.forEach((rule: unknown, index) => {
    const [pattern, ttl] = Array.isArray(rule) ? rule : []
    // A glob names host and path; a scheme ('https://…') would never match and is a mistake worth saying.
    const validPattern = pattern instanceof RegExp || (typeof pattern === 'string' && pattern !== '' && !pattern.includes('://'))
    const validTtl = isSeconds(ttl) || ttl === 'never' || ttl === 'no-store'
    if (!Array.isArray(rule) || rule.length !== 2 || !validPattern || !validTtl) {
      throw new TypeError(
        `options.urlsExpireAfter[${index}] must be a [pattern, ttl] pair: a glob or RegExp, and seconds, "never" or "no-store", received ${describe(rule)}`,
      )
    }
  })
  return value as UrlExpiryRule[]
}

function isSeconds(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

function checkAllowedStatuses(value: unknown): ReadonlySet<number> | undefined {
  if (value === undefined) return undefined
  const isStorableStatus = (status: unknown) => Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599 && status !== 206 && status !== 304
  if (!Array.isArray(value) || !value.every(isStorableStatus)) {
    throw new TypeError(`options.allowedStatuses must be an array of final statuses other than 206 and 304, received ${describe(value)}`)
  }
  return new Set(value as number[])
}

function checkCacheStatus(value: unknown): string | false {
  if (value === false || (typeof value === 'string' && TOKEN.test(value))) return value
  throw new TypeError(`options.cacheStatus must be a token such as "my-cache", or false, received ${describe(value)}`)
}

function checkStaleIfError(value: unknown): boolean | number | undefined {
  if (value === undefined || typeof value === 'boolean') return value
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
  throw new TypeError(`options.staleIfError must be a boolean or a whole number of seconds, received ${describe(value)}`)
}
