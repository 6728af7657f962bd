/**
 * Reading the fields that carry directives, as RFC 9111 writes them: Cache-Control (§5.2), a request's
 * `Pragma` (§5.4), delta-seconds (§1.2.2) and `Vary`'s names; which requests the store does not answer;
 * and the request header values a `Vary` variant is selected by. Pure functions that never throw.
 */
import { joinHeader, type RequestHeaders } from './headers.js'
import { splitOutsideQuotes } from './response-fields.js'

/** Directive names (lower case) and their arguments (unquoted), or `true` for a directive without one. */
export type Directives = ReadonlyMap<string, string | true>

/** What a field without directives parses to: one map for all, as most requests have none. */
export const NO_DIRECTIVES: Directives = new Map()

/**
 * Requests the cache does not answer from storage: ranges (206 responses are neither stored nor served)
 * and preconditions other than validation (`If-Match`, `If-Unmodified-Since`, `If-Range`) go to the
 * origin untouched. `If-None-Match` and `If-Modified-Since` are answered from a fresh entry (validation.ts).
 */
export function isLookupBypassed(headers: RequestHeaders): boolean {
  return (
    headers.range !== undefined ||
    headers['if-match'] !== undefined ||
    headers['if-unmodified-since'] !== undefined ||
    headers['if-range'] !== undefined
  )
}

/** RFC 9111 §5.2.1.7: the request may be answered only from the store (or with a 504), never by the origin. */
export function isOnlyIfCached(headers: RequestHeaders): boolean {
  return parseRequestDirectives(headers).has('only-if-cached')
}

/** RFC 9111 §5.4: without Cache-Control, a request's `Pragma: no-cache` means `Cache-Control: no-cache`. */
export function parseRequestDirectives(headers: RequestHeaders): Directives {
  const cacheControl = headers['cache-control']
  if (cacheControl === undefined && headers.pragma !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(headers.pragma)) {
    return new Map([['no-cache', true]])
  }
  return parseCacheControl(cacheControl)
}

/**
 * Cache-Control directives (RFC 9111 §5.2): lower-case names, arguments unquoted. Empty members are
 * skipped; a directive given twice keeps its first argument. Never throws, whatever the input.
 */
export function parseCacheControl(value: string | undefined): Directives {
  if (!value) return NO_DIRECTIVES
  const directives = new Map<string, string | true>()
  for (const member of splitOutsideQuotes(value)) {
    const equals = member.indexOf('=')
    const name = (equals === -1 ? member : member.slice(0, equals)).trim().toLowerCase()
    if (name === '' || directives.has(name)) continue
    const argument = equals === -1 ? '' : unquote(member.slice(equals + 1).trim())
    directives.set(name, argument === '' ? true : argument)
  }
  return directives
}

function unquote(argument: string): string {
  if (argument.length < 2 || !argument.startsWith('"') || !argument.endsWith('"')) return argument
  return argument.slice(1, -1).replace(/\\(.)/g, '$1')
}

/** RFC 9111 §1.2.2: delta-seconds are digits only; anything else is invalid (undefined). */
export function parseDeltaSeconds(value: string | true | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d+$/.test(value)) return undefined
  return Number(value)
}

/** The lower-case request header names a `Vary` field lists. */
export function parseVary(value: string | string[] | undefined): string[] {
  const joined = joinHeader(value)
  if (!joined) return []
  return joined
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '')
}

/**
 * Each named request header's value, `null` when absent: what a variant is selected by. Values are
 * normalised as RFC 9111 §4.1 allows, so that requests that mean the same select the same variant:
 * whitespace around list commas and at the ends removed, and `Accept-Language` (whose language tags are
 * case-insensitive) lower-cased.
 */
export function pickHeaders(headers: RequestHeaders, names: readonly string[]): Record<string, string | null> {
  const picked: Record<string, string | null> = Object.create(null) // so that a field named __proto__ is a field
  for (const name of names) {
    // Own fields only: `Vary: __proto__` must not reach Object.prototype.
    const value = Object.hasOwn(headers, name) ? headers[name] : undefined
    if (value === undefined) {
      picked[name] = null
      continue
    }
    const normalised = value.trim().replace(/[ \t]*,[ \t]*/g, ',')
    picked[name] = name === 'accept-language' ? normalised.toLowerCase() : normalised
  }
  return picked
}
