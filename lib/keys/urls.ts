/**
 * The URLs the cache names: a request's target made absolute, exactly as undici sends it or not at all,
 * and the normalised form keys and stored entries hold (fragment dropped, query parameters sorted,
 * ignored ones removed, redacted ones digested).
 */
import { stringify, type ParsedUrlQueryInput } from 'node:querystring'
import type { Dispatcher } from 'undici'
import type { ParameterRules } from './redaction.js'
import { normalizeParameters } from './request-body.js'

/** The host (and port) of a URL in WHATWG form, which writes it in lower case. */
export function hostOf(url: string): string {
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
export function requestTarget(options: Dispatcher.DispatchOptions): string | undefined {
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
export function absoluteUrl(origin: string, path: string): string | undefined {
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
 * The origin of a URL, '' when it is none. Not `URL.canParse`: Node 22's has refused, after other calls,
 * a URL its parser takes (seen in test/known-urls.test.ts).
 */
export function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return ''
  }
}
