import { hash } from 'node:crypto'
import type { Dispatcher } from 'undici'
import { normalizeRequestHeaders, type RequestHeaders } from '../rules/headers.js'
import { pickHeaders } from '../rules/directives.js'
import { DEFAULT_REDACTED_PARAMETERS, hasCredentialHeader, parameterRules, redactHeaders, type ParameterRules } from './redaction.js'
import { normalizeBody } from './request-body.js'
import { hostOf, normalizeUrl, requestTarget } from './urls.js'

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
 * What keying needs of a cache's memo of URLs (`KnownUrls`, known-urls.ts): a request's absolute URL, and
 * for a URL its normalised form and the default key of a GET of it.
 */
export interface UrlMemo {
  absolute(origin: string, path: string): string | undefined
  identity(url: string): { storedUrl: string; getKey: string }
}

/**
 * Reads undici's dispatch options into a `CacheRequest` (without its body, which `request-body.ts`
 * reads), or `undefined` when the request has no absolute URL (undici 7 leaves `origin` out of the
 * options a `Client` passes to its interceptors), in which case the cache cannot key it safely and stays
 * out of the way.
 */
export function toCacheRequest(options: Dispatcher.DispatchOptions, knownUrls: UrlMemo): CacheRequest | undefined {
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
    knownUrls: UrlMemo
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

/** The default key of a GET (or HEAD) of `storedUrl`, a URL normalised already, without matched headers. */
export function plainGetKey(storedUrl: string, rules: ParameterRules): string {
  return keyOf({ method: 'GET', url: storedUrl, body: undefined, headers: NO_HEADERS }, { rules, matchHeaders: false })
}

/** The headers of a GET keyed without any: one record for all, never written to. */
const NO_HEADERS: RequestHeaders = Object.freeze({})

/** Headers without the credential ones: the same request as made without credentials. */
function withoutCredentials(headers: RequestHeaders, rules: ParameterRules): RequestHeaders {
  const kept: RequestHeaders = {}
  for (const name in headers) if (!rules.credentialHeaders.has(name)) kept[name] = headers[name]!
  return kept
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

/** The key of one variant of a URL whose responses carry `Vary`: the URL's key and the selecting values. */
export function createVariantKey(key: string, varyHeaders: Record<string, string | null>): string {
  return `${key}:${digest(JSON.stringify(varyHeaders))}`
}

function digest(text: string | Uint8Array): string {
  // One-shot hashing: no Hash object per call, which counts on a hit path.
  return hash('sha256', text, 'base64url')
}
