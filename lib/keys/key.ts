import { hash } from 'node:crypto'
import { stringify, type ParsedUrlQueryInput } from 'node:querystring'
import type { Dispatcher } from 'undici'
import { normalizeRequestHeaders, type RequestHeaders } from '../rules/headers.js'
import { pickHeaders } from '../rules/policy.js'
import { DEFAULT_REDACTED_PARAMETERS, hasCredentialHeader, parameterRules, redactHeaders, type ParameterRules } from './redaction.js'
import { normalizeBody, normalizeParameters } from './request-body.js'

/** A request as the cache and a key function see it. */
export interface CacheRequest {
  /** Upper-case method. */
  method: string
  /** The absolute URL as requested (never with a fragment: a request-target with one is not keyed). */
  url: string
  /** Lower-case names; repeated fields joined with ", ". */
  headers: RequestHeaders
  /** The request body, for methods whose body is part of the key (`methods` beyond GET and HEAD). */
  body?: Uint8Array
}

/** What decides which stored response a request matches, besides the method, the URL and `Vary`. */
export interface KeyOptions {
  /**
   * Names left out of the key wherever they appear: query parameters, JSON and form body members, matched
   * request headers and credential headers. Compared case-insensitively. Default: none.
   */
  ignoredParameters?: readonly string[]
  /**
   * Names whose values take part in the key only as a digest, wherever they appear: query parameters, JSON
   * and form body members, and request headers, which are part of the key when present (credentials).
   * Compared case-insensitively. Default: `DEFAULT_REDACTED_PARAMETERS`; a list given replaces it, but
   * `Authorization`, `Proxy-Authorization` and `Cookie` are credentials whatever it says.
   */
  redactedParameters?: readonly string[]
  /** `true`: every request header is part of the key; a list: those request headers are. */
  matchHeaders?: boolean | readonly string[]
}

/**
 * A request with its key, and the URL, headers and body that are stored with its response (ignored
 * parameters removed, redacted values as digests).
 */
export interface KeyedRequest extends CacheRequest {
  key: string
  /**
   * The key of the same request without its credential headers, when it has any (default key function
   * only): a response stored for a request without credentials may answer one with them (cache-tests
   * `other-cookie`), as without this cache's redaction it would.
   */
  fallbackKey?: string
  /** The normalised URL: what entries hold and what `cache.urls()` lists. */
  storedUrl: string
  /** The request headers with ignored and redacted values as digests: stored, and what `Vary` selects by. */
  storedHeaders: RequestHeaders
  /** The normalised body, for methods whose body is part of the key. */
  storedBody?: Uint8Array
  /**
   * Whether a stored response is served only for its own URL: so with the default key function, where
   * equal keys for different URLs would be a digest collision. A custom key function decides for itself.
   */
  checksUrl: boolean
}

/**
 * Reads undici's dispatch options into a `CacheRequest` (without its body, which `request-body.ts`
 * reads), or `undefined` when the request has no absolute URL (undici 7 leaves `origin` out of the
 * options a `Client` passes to its interceptors), in which case the cache cannot key it safely and stays
 * out of the way.
 */
export function toCacheRequest(options: Dispatcher.DispatchOptions, knownUrls: KnownUrls): CacheRequest | undefined {
  if (options.origin == null) return undefined
  const target = requestTarget(options)
  const url = target === undefined ? undefined : knownUrls.absolute(String(options.origin), target)
  if (url === undefined) return undefined
  const headers = normalizeRequestHeaders(options.headers)
  // undici sends a Host the caller gives in place of the origin's (a proxy forwarding many sites to one
  // address does): the request then names a resource of that host, not of its URL, and is not keyed.
  if (headers.host !== undefined && headers.host.toLowerCase() !== hostOf(url)) return undefined
  return { method: (options.method ?? 'GET').toUpperCase(), url, headers }
}

/** The host (and port) of a URL in WHATWG form, which writes it in lower case. */
function hostOf(url: string): string {
  const start = url.indexOf('//') + 2
  const end = url.indexOf('/', start)
  return url.slice(start, end === -1 ? undefined : end)
}

/**
 * The URL of an unsafe request the cache does not key (`toCacheRequest` refused it), when it is on the
 * request's origin, as the URL parser resolves it: what the request may change, so what is stored for it
 * is invalidated (invalidating what the target may not name is harmless).
 */
export function invalidatedUrl(options: Dispatcher.DispatchOptions): string | undefined {
  const target = requestTarget(options)
  if (options.origin == null || target === undefined) return undefined
  try {
    const url = new URL(target, String(options.origin))
    return url.origin === new URL(String(options.origin)).origin ? withoutFragment(url.href) : undefined
  } catch {
    return undefined
  }
}

/**
 * The request-target undici sends: `path`, with its `query` option serialised by node:querystring as undici
 * does. `undefined` when undici refuses the pair (a path with a query or fragment of its own).
 */
function requestTarget(options: Dispatcher.DispatchOptions): string | undefined {
  const query = (options as { query?: ParsedUrlQueryInput }).query
  if (!query) return options.path
  if (/[?#]/.test(options.path)) return undefined
  const serialised = stringify(query)
  return serialised === '' ? options.path : `${options.path}?${serialised}`
}

/**
 * The absolute URL of the request-target `path` (without fragment) on `origin`; `undefined` when the cache
 * cannot key it safely. undici sends the target as it is written, so the key must name exactly that: a
 * target the URL parser would rewrite (`//host/x` read as another host, dot segments resolved, a backslash
 * turned into a slash, characters percent-encoded) or one not in origin-form (`http://other/x`) could name
 * another resource, even on another origin, and such requests are left uncached.
 */
function absoluteUrl(origin: string, path: string): string | undefined {
  const base = originOf(origin)
  if (!/^https?:/.test(base) || !path.startsWith('/')) return undefined
  const written = base + path
  let url: URL
  try {
    url = new URL(written)
  } catch {
    return undefined
  }
  return url.href === written ? written : undefined
}

/**
 * The default key function: a full-length SHA-256 digest of the method, the normalised URL (scheme and
 * host lower-cased, default port, fragment and ignored parameters dropped, redacted values digested, query
 * parameters sorted by name), the normalised body when there is one (JSON members sorted, form fields
 * sorted, ignored ones dropped, redacted ones digested), the matched request headers and the digests of
 * the redacted request headers present (credentials: two users' never share a key). HEAD shares GET's key,
 * so a HEAD request can be answered from a stored GET response. `Vary` is not part of it: variants are
 * keyed below it.
 */
export function createKey(request: CacheRequest, options: KeyOptions = {}): string {
  const rules = parameterRules({
    ignored: options.ignoredParameters ?? [],
    redacted: options.redactedParameters ?? DEFAULT_REDACTED_PARAMETERS,
    shared: false,
  })
  return defaultKeyOf(request, { rules, matchHeaders: options.matchHeaders ?? false })
}

/**
 * The default key of a request under these rules (the fast paths of `keyRequest` aside).
 * `createKey` with a cache's own options (`helpers.createKey`).
 */
export function defaultKeyOf(request: CacheRequest, options: { rules: ParameterRules; matchHeaders: boolean | readonly string[] }): string {
  const { rules } = options
  const url = normalizeUrl(request.url, rules)
  const body = request.body === undefined ? undefined : normalizeBody(request.body, request.headers['content-type'], rules)
  return keyOf({ method: request.method, url, body, headers: redactHeaders(request.headers, rules) }, options)
}

/** Keys a request with the cache's resolved options (the custom key function, if any, may throw). */
export function keyRequest(
  request: CacheRequest,
  options: {
    parameters: ParameterRules
    matchHeaders: boolean | readonly string[]
    customKey: ((request: CacheRequest) => string) | undefined
    knownUrls: KnownUrls
  },
): KeyedRequest {
  const { parameters: rules, matchHeaders, customKey } = options
  const known = options.knownUrls.identity(request.url)
  const storedUrl = known.storedUrl
  const storedHeaders = redactHeaders(request.headers, rules)
  // Most requests: a GET of a URL without credentials, its key remembered; one object made, not three.
  if (request.body === undefined && customKey === undefined && !hasCredentialHeader(request.headers, rules)) {
    const { method, url, headers } = request
    const isPlainGet = matchHeaders === false && (method === 'GET' || method === 'HEAD')
    const key = isPlainGet ? known.getKey : keyOf({ method, url: storedUrl, body: undefined, headers: storedHeaders }, { rules, matchHeaders })
    return { method, url, headers, storedUrl, storedHeaders, checksUrl: true, key }
  }
  const storedBody = request.body === undefined ? undefined : normalizeBody(request.body, request.headers['content-type'], rules)
  const keyed = { ...request, storedUrl, storedHeaders, ...(storedBody === undefined ? {} : { storedBody }), checksUrl: customKey === undefined }
  if (customKey !== undefined) return { ...keyed, key: checkKey(customKey(request)) }
  const normalized = { method: request.method, url: storedUrl, body: storedBody, headers: storedHeaders }
  const keyOptions = { rules, matchHeaders }
  const isPlainGet = storedBody === undefined && matchHeaders === false && (request.method === 'GET' || request.method === 'HEAD')
  if (!hasCredentialHeader(request.headers, rules)) return { ...keyed, key: isPlainGet ? known.getKey : keyOf(normalized, keyOptions) }
  const fallbackKey = isPlainGet ? known.getKey : keyOf({ ...normalized, headers: withoutCredentials(storedHeaders, rules) }, keyOptions)
  return { ...keyed, key: keyOf(normalized, keyOptions), fallbackKey }
}

function checkKey(key: unknown): string {
  if (typeof key === 'string' && key !== '') return key
  throw new TypeError(`options.key must return a non-empty string, returned ${typeof key === 'string' ? '""' : String(key)}`)
}

/** A request normalised: URL, body and headers as they are stored (ignored parameters out, redacted digested). */
interface NormalizedRequest {
  method: string
  url: string
  body: Uint8Array | undefined
  headers: RequestHeaders
}

function keyOf(request: NormalizedRequest, options: { rules: ParameterRules; matchHeaders: boolean | readonly string[] }): string {
  const { rules, matchHeaders } = options
  // HEAD shares GET's key.
  let material = `${request.method === 'HEAD' ? 'GET' : request.method} ${request.url}`
  if (request.body !== undefined) material += `\nbody ${digest(request.body)}`
  if (matchHeaders !== false) material += `\nheaders ${JSON.stringify(matchedHeaders(request.headers, matchHeaders, rules.ignored))}`
  // Issue #16: credentials (their digests) tell requests apart; a request without any keys as it always did.
  let credentials: string[] | undefined // most requests have none: no array made for them
  for (const name in request.headers) if (rules.credentialHeaders.has(name)) (credentials ??= []).push(name)
  if (credentials !== undefined) material += `\ncredentials ${JSON.stringify(pickHeaders(request.headers, credentials.sort()))}`
  return digest(material)
}

/** Headers without the credential ones: the same request as made without credentials. */
function withoutCredentials(headers: RequestHeaders, rules: ParameterRules): RequestHeaders {
  const kept: RequestHeaders = {}
  for (const name in headers) if (!rules.credentialHeaders.has(name)) kept[name] = headers[name]!
  return kept
}

/** A serialised URL without its fragment, if any (`#` appears nowhere else in one). */
function withoutFragment(href: string): string {
  const fragmentAt = href.indexOf('#')
  return fragmentAt === -1 ? href : href.slice(0, fragmentAt)
}

/**
 * The URL as keys and stored entries hold it: scheme and host lower-cased, default port and fragment
 * dropped (WHATWG URL parsing does these), ignored query parameters removed, redacted ones' values
 * digested, and the parameters sorted by name.
 */
export function normalizeUrl(href: string, rules: ParameterRules): string {
  return normalizeRequestUrl(new URL(href).href, rules)
}

/**
 * `normalizeUrl` for a URL in WHATWG form already (`URL.href`, or from `toCacheRequest`): only the fragment
 * and the query are left to do, on the string, without parsing it again. The pairs of a serialised query
 * are serialised already, so the query stays valid in any order.
 */
export function normalizeRequestUrl(href: string, rules: ParameterRules): string {
  const url = withoutFragment(href)
  const queryAt = url.indexOf('?')
  if (queryAt === -1) return url
  const query = url.slice(queryAt + 1)
  const normalized = normalizeParameters(query, rules)
  if (normalized === query) return url
  return normalized === '' ? url.slice(0, queryAt) : `${url.slice(0, queryAt + 1)}${normalized}`
}

/**
 * The request headers that are part of the key: every header (`true`) or the listed ones, ignored ones
 * left out, names sorted, values trimmed and list commas normalised. A listed header that is absent
 * counts as `null`, so that its absence is matched too.
 */
function matchedHeaders(
  headers: RequestHeaders,
  matchHeaders: true | readonly string[],
  ignored: ReadonlySet<string>,
): Array<[string, string | null]> {
  const names = matchHeaders === true ? Object.keys(headers) : matchHeaders.map((name) => name.toLowerCase())
  const kept = [...new Set(names)].filter((name) => !ignored.has(name)).sort()
  return Object.entries(pickHeaders(headers, kept))
}

/**
 * What the cache works out from a URL, remembered: a request's absolute URL from undici's `origin` and
 * `path`, and for that URL its normalised form and the default key of a GET (or HEAD) of it. Working them
 * out costs three URL parses, a sort of the query and a SHA-256: without this, most of the cache's own work
 * on a hit. All are pure functions of their inputs and of the cache's fixed parameter rules. At most
 * `limit` of each are kept, all forgotten at once when that is reached (a working set of hot URLs is soon
 * remembered again), and URLs longer than `MAX_REMEMBERED_LENGTH` are not kept: so this holds at most a
 * few MiB whatever the traffic, and typically a few hundred KiB.
 */
export class KnownUrls {
  readonly #rules: ParameterRules
  readonly #limit: number
  readonly #absolute = new Map<string, string>()
  /** Each origin seen, what it serialises to, and the identities remembered of URLs on it by path. */
  readonly #origins = new Map<string, KnownOrigin>()
  /** Identities of URLs `absolute` did not join from a known origin and a plain path, by URL. */
  readonly #identities = new Map<string, UrlIdentity>()
  /** The origin `#knownOrigin` last answered for, and its answer. */
  #recentOrigin: string | undefined
  #recentKnown: KnownOrigin | undefined
  /** How many identities are remembered, in `#identities` and in the origins' maps together. */
  #identityCount = 0
  readonly #keyOptions: { rules: ParameterRules; matchHeaders: false }
  /**
   * The URL `absolute` last joined from an origin and a plain path, with those and the identity kept for
   * the path, if any: `identity` of that URL finds it by path on its origin, not by the URL, a string made
   * afresh for each request and so flattened and hashed again each time (most of a hit's lookup, issue #17).
   */
  #joinedUrl: string | undefined
  #joinedPath = ''
  #joinedOrigin: KnownOrigin | undefined
  #joinedIdentity: UrlIdentity | undefined
  /** The identity `identity` last worked out, its URL, and its origin and path when joined, until `keep`. */
  #lastUrl: string | undefined
  #lastIdentity: UrlIdentity | undefined
  #lastOrigin: KnownOrigin | undefined
  #lastPath = ''

  constructor(rules: ParameterRules, limit = 1000) {
    this.#rules = rules
    this.#limit = limit
    this.#keyOptions = { rules, matchHeaders: false }
  }

  /** The URL of request-target `path` on `origin` (see `absoluteUrl`); `undefined` when it is not keyed. */
  absolute(origin: string, path: string): string | undefined {
    const known = this.#knownOrigin(origin)
    // A path kept (`keep`) was joined as below: its identity is at hand, and it needs no test again.
    const identity = known.identities.get(path)
    // Most requests need no parsing: an origin in its serialised form and a path the URL parser keeps as it
    // is (no `#` among its characters either).
    if (identity !== undefined || (known.serialised !== '' && PLAIN_PATH.test(path) && !MAY_HOLD_DOT_SEGMENT.test(path))) {
      const url = known.serialised + path
      this.#joinedUrl = url
      this.#joinedPath = path
      this.#joinedOrigin = known
      this.#joinedIdentity = identity
      return url
    }
    // undici sends a fragment too (a URL it was given has none: it is dropped as the URL is read), which
    // would name another target than the URL without it.
    if (path.includes('#')) return undefined
    // The origin's length first, so that no two (origin, path) pairs share a memo key.
    const memoKey = `${origin.length} ${origin}${path}`
    let url = this.#absolute.get(memoKey)
    if (url === undefined) {
      url = absoluteUrl(origin, path)
      if (url !== undefined) remember(this.#absolute, memoKey, url, this.#limit)
    }
    return url
  }

  /** What is known of `origin`: the http(s) origin it serialises to when it is written exactly so ('' if not). */
  #knownOrigin(origin: string): KnownOrigin {
    // Most programs send to one origin, named by a string made afresh per request: compared, not hashed.
    if (origin === this.#recentOrigin && this.#recentKnown?.isHeld) return this.#recentKnown
    let known = this.#origins.get(origin)
    if (known === undefined) {
      let serialised = originOf(origin)
      const isExact = (serialised === origin || `${serialised}/` === origin) && /^https?:/.test(serialised)
      if (!isExact) serialised = ''
      known = { serialised, identities: new Map(), isHeld: origin.length <= MAX_REMEMBERED_LENGTH }
      if (this.#origins.size >= this.#limit) this.#forgetOrigins()
      if (known.isHeld) this.#origins.set(origin, known)
    }
    this.#recentOrigin = origin
    this.#recentKnown = known
    return known
  }

  /**
   * The URL as entries hold it (`storedUrl`) and the default key of a GET or HEAD of it. One worked out
   * afresh is not remembered yet (see `keep`).
   */
  identity(url: string): UrlIdentity {
    let origin: KnownOrigin | undefined
    let path = ''
    if (url === this.#joinedUrl) {
      // `absolute` looked it up already.
      if (this.#joinedIdentity !== undefined) return this.#joinedIdentity
      origin = this.#joinedOrigin
      path = this.#joinedPath
    } else {
      const known = this.#identities.get(url)
      if (known !== undefined) return known
    }
    const storedUrl = normalizeRequestUrl(url, this.#rules)
    const identity = { storedUrl, getKey: keyOf({ method: 'GET', url: storedUrl, body: undefined, headers: NO_HEADERS }, this.#keyOptions) }
    this.#lastUrl = url
    this.#lastIdentity = identity
    this.#lastOrigin = origin
    this.#lastPath = path
    return identity
  }

  /**
   * Remembers the identity of `url` if it was the last worked out: called when a request for it found a
   * response stored, so that its next requests, likely hits, find it. A URL is not remembered before:
   * most URLs that nothing is stored for are misses never asked for again (a new id per request, a
   * `no-store` answer), and remembering each would cost every such miss more than working it out does
   * (what the memo holds outlives young objects, and the collector copies it on; measured in issue #17).
   */
  keep(url: string): void {
    const identity = this.#lastIdentity
    if (this.#lastUrl !== url || identity === undefined || url.length > MAX_REMEMBERED_LENGTH) return
    if (this.#identityCount >= this.#limit) this.#forgetIdentities()
    // An origin not held (too long a string, or forgotten since) is not written to: #forgetIdentities would miss it.
    const origin = this.#lastOrigin
    if (origin?.isHeld) origin.identities.set(this.#lastPath, identity)
    else this.#identities.set(url, identity)
    this.#identityCount++
    this.#lastUrl = undefined
    this.#lastIdentity = undefined
    this.#lastOrigin = undefined
  }

  #forgetIdentities(): void {
    this.#identities.clear()
    for (const origin of this.#origins.values()) origin.identities.clear()
    this.#identityCount = 0
  }

  #forgetOrigins(): void {
    this.#forgetIdentities()
    for (const origin of this.#origins.values()) origin.isHeld = false
    this.#origins.clear()
  }
}

/** An origin as undici's `origin` option gives it: its serialised form, if written so, and its URLs' identities by path. */
interface KnownOrigin {
  serialised: string
  identities: Map<string, UrlIdentity>
  /** Whether `#origins` holds it, so that forgetting the identities reaches those it holds. */
  isHeld: boolean
}

/** A URL as entries hold it, and the default key of a GET or HEAD of it. */
interface UrlIdentity {
  storedUrl: string
  getKey: string
}

/** The headers of a GET keyed without any: one record for all, never written to. */
const NO_HEADERS: RequestHeaders = Object.freeze({})

const MAX_REMEMBERED_LENGTH = 1000

/**
 * A path (with its query) that the URL parser keeps exactly as written for an http(s) URL: only characters
 * it never percent-encodes there (so no space, quote, `'`, `<`, backslash, non-ASCII...), not `//` first
 * (that would name a host). `%` sequences are never decoded by the parser, so they stay as they are.
 */
const PLAIN_PATH = /^\/(?!\/)[\w\-.~!$&()*+,;=:@/?%]*$/
/** Dot segments (`/./`, `/../`, also spelt `%2e`) are resolved by the parser: such paths are parsed. */
const MAY_HOLD_DOT_SEGMENT = /\/\.|%2e/i

/**
 * The origin of a URL, '' when it is none. Not `URL.canParse`: Node 22's has refused, after other calls,
 * a URL its parser takes (seen in test/known-urls.test.ts).
 */
function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return ''
  }
}

function remember<T>(memo: Map<string, T>, key: string, value: T, limit: number): void {
  if (key.length > MAX_REMEMBERED_LENGTH) return
  if (memo.size >= limit) memo.clear()
  memo.set(key, value)
}

/** The key of one variant of a URL whose responses carry `Vary`: the URL's key and the selecting values. */
export function createVariantKey(key: string, varyHeaders: Record<string, string | null>): string {
  return `${key}:${digest(JSON.stringify(varyHeaders))}`
}

function digest(text: string | Uint8Array): string {
  // One-shot hashing: no Hash object per call, which counts on a hit path.
  return hash('sha256', text, 'base64url')
}
