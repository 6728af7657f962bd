import { hash } from 'node:crypto'
import type { Dispatcher } from 'undici'
import { normalizeRequestHeaders, type RequestHeaders } from './headers.js'

/** A request as the cache sees it: the method, the absolute URL and lower-case headers. */
export interface CacheRequest {
  /** Upper-case method. */
  method: string
  /** The absolute URL, fragment dropped. */
  url: string
  headers: RequestHeaders
}

/**
 * Reads undici's dispatch options into a `CacheRequest`, or `undefined` when the request has no absolute
 * URL (undici 7 leaves `origin` out of the options a `Client` passes to its interceptors), in which case
 * the cache cannot key it safely and stays out of the way.
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
  url.hash = ''
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
 * The default key function: a full-length SHA-256 digest of the method and the normalised URL (scheme
 * and host lower-cased by URL parsing, default port and fragment dropped). HEAD shares GET's key, so a
 * HEAD request can be answered from a stored GET response.
 */
export function createKey(request: CacheRequest): string {
  return keyOfNormalized(request.method, normalizeUrl(request.url))
}

/** `createKey` for a request from `toCacheRequest`, whose URL is already normalised: one URL parse less per request. */
export function keyOfNormalized(method: string, normalizedUrl: string): string {
  return digest(`${method === 'HEAD' ? 'GET' : method} ${normalizedUrl}`)
}

/** WHATWG URL parsing lower-cases the scheme and host and drops a default port; the fragment goes too. */
function normalizeUrl(href: string): string {
  const url = new URL(href)
  url.hash = ''
  return url.href
}

/** The key of one variant of a URL whose responses carry `Vary`: the URL's key and the selecting values. */
export function createVariantKey(key: string, varyHeaders: Record<string, string | null>): string {
  return `${key}:${digest(JSON.stringify(varyHeaders))}`
}

function digest(text: string): string {
  // One-shot hashing: no Hash object per call, which counts on a hit path.
  return hash('sha256', text, 'base64url')
}
