import { hash } from 'node:crypto'
import type { Dispatcher } from 'undici'
import { normalizeRequestHeaders, type RequestHeaders } from './headers.js'
import { pickHeaders } from './policy.js'
import { normalizeBody, normalizeParameters } from './request-body.js'

/** A request as the cache and a key function see it. */
export interface CacheRequest {
  /** Upper-case method. */
  method: string
  /** The absolute URL as requested, fragment dropped. */
  url: string
  /** Lower-case names; repeated fields joined with ", ". */
  headers: RequestHeaders
  /** The request body, for methods whose body is part of the key (`methods` beyond GET and HEAD). */
  body?: Uint8Array
}

/** What decides which stored response a request matches, besides the method, the URL and `Vary`. */
export interface KeyOptions {
  /**
   * Names left out of the key wherever they appear: query parameters, JSON and form body members, and
   * matched request headers. Compared case-insensitively.
   */
  ignoredParameters?: readonly string[]
  /** `true`: every request header is part of the key; a list: those request headers are. */
  matchHeaders?: boolean | readonly string[]
}

/** A request with its key, and the URL and body that are stored with its response (ignored parameters removed). */
export interface KeyedRequest extends CacheRequest {
  key: string
  /** The normalised URL: what entries hold and what `cache.urls()` lists. */
  storedUrl: string
  /** The request headers without ignored ones. */
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
export function toCacheRequest(options: Dispatcher.DispatchOptions): CacheRequest | undefined {
  if (options.origin == null) return undefined
  let url: URL
  try {
    url = new URL(options.path, options.origin)
  } catch {
    return undefined
  }
  const query = (options as { query?: Record<string, unknown> }).query
  if (query) appendQuery(url, query)
  // Setting `hash` re-serialises the whole URL, even to the same value: only when there is a fragment.
  if (url.hash !== '') url.hash = ''
  return {
    method: (options.method ?? 'GET').toUpperCase(),
    url: url.href,
    headers: normalizeRequestHeaders(options.headers),
  }
}

/** undici's `query` option: each value appended as undici itself does (arrays repeat the name). */
function appendQuery(url: URL, query: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue
    const values = Array.isArray(value) ? value : [value]
    for (const item of values) url.searchParams.append(name, String(item))
  }
}

/**
 * The default key function: a full-length SHA-256 digest of the method, the normalised URL (scheme and
 * host lower-cased, default port, fragment and ignored parameters dropped, query parameters sorted by
 * name), the normalised body when there is one (JSON members sorted, form fields sorted, ignored ones
 * dropped) and the matched request headers. HEAD shares GET's key, so a HEAD request can be answered from
 * a stored GET response. `Vary` is not part of it: variants are keyed below it.
 */
export function createKey(request: CacheRequest, options: KeyOptions = {}): string {
  const ignored = ignoredNames(options.ignoredParameters)
  const url = normalizeUrl(request.url, ignored)
  const body = request.body === undefined ? undefined : normalizeBody(request.body, request.headers['content-type'], ignored)
  return keyOf(request, { url, body }, { ignored, matchHeaders: options.matchHeaders ?? false })
}

/** Keys a request with the cache's resolved options (the custom key function, if any, may throw). */
export function keyRequest(
  request: CacheRequest,
  options: { ignoredParameters: ReadonlySet<string>; matchHeaders: boolean | readonly string[]; customKey: ((request: CacheRequest) => string) | undefined },
): KeyedRequest {
  const { ignoredParameters: ignored, matchHeaders, customKey } = options
  const storedUrl = normalizeRequestUrl(request.url, ignored)
  const storedBody = request.body === undefined ? undefined : normalizeBody(request.body, request.headers['content-type'], ignored)
  const key = customKey === undefined ? keyOf(request, { url: storedUrl, body: storedBody }, { ignored, matchHeaders }) : checkKey(customKey(request))
  const storedHeaders = redactHeaders(request.headers, ignored)
  return { ...request, key, storedUrl, storedHeaders, ...(storedBody === undefined ? {} : { storedBody }), checksUrl: customKey === undefined }
}

function checkKey(key: unknown): string {
  if (typeof key === 'string' && key !== '') return key
  throw new TypeError(`options.key must return a non-empty string, returned ${typeof key === 'string' ? '""' : String(key)}`)
}

function keyOf(
  request: CacheRequest,
  normalized: { url: string; body: Uint8Array | undefined },
  options: { ignored: ReadonlySet<string>; matchHeaders: boolean | readonly string[] },
): string {
  let material = `${request.method === 'HEAD' ? 'GET' : request.method} ${normalized.url}`
  if (normalized.body !== undefined) material += `\nbody ${digest(normalized.body)}`
  if (options.matchHeaders !== false) {
    material += `\nheaders ${JSON.stringify(matchedHeaders(request.headers, options.matchHeaders, options.ignored))}`
  }
  return digest(material)
}

/** Lower-case names, for case-insensitive comparison. */
export function ignoredNames(names: readonly string[] | undefined): ReadonlySet<string> {
  return new Set((names ?? []).map((name) => name.toLowerCase()))
}

/**
 * The URL as keys and stored entries hold it: scheme and host lower-cased, default port and fragment
 * dropped (WHATWG URL parsing does these), ignored query parameters removed and the others sorted by name.
 */
export function normalizeUrl(href: string, ignored: ReadonlySet<string>): string {
  const url = new URL(href)
  if (url.hash !== '') url.hash = ''
  if (url.search === '') return url.href
  url.search = normalizeParameters(url.search.slice(1), ignored)
  return url.href
}

/** `normalizeUrl` for a URL from `toCacheRequest`, parsed already: without a query it is normalised as it is. */
export function normalizeRequestUrl(href: string, ignored: ReadonlySet<string>): string {
  return href.includes('?') ? normalizeUrl(href, ignored) : href
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

/** The request headers as they are stored with a response: ignored ones left out. */
function redactHeaders(headers: RequestHeaders, ignored: ReadonlySet<string>): RequestHeaders {
  let hasIgnored = false
  for (const name in headers) if (ignored.has(name)) hasIgnored = true
  if (!hasIgnored) return headers
  const kept: RequestHeaders = {}
  for (const name in headers) if (!ignored.has(name)) kept[name] = headers[name]!
  return kept
}

/** The key of one variant of a URL whose responses carry `Vary`: the URL's key and the selecting values. */
export function createVariantKey(key: string, varyHeaders: Record<string, string | null>): string {
  return `${key}:${digest(JSON.stringify(varyHeaders))}`
}

function digest(text: string | Uint8Array): string {
  // One-shot hashing: no Hash object per call, which counts on a hit path.
  return hash('sha256', text, 'base64url')
}
