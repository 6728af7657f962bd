/**
 * The response fields the cache's decisions rest on, read as RFC 9111 says before http-cache-semantics
 * sees them. It parses dates with `Date.parse`, takes directive names case-sensitively, reads a qualified
 * `no-cache="field"` as plain `no-cache`, and in shared mode refuses responses with `Set-Cookie`; where
 * those differ from the RFC, the fields it is given are rewritten here so that its answers are the RFC's.
 * A shared cache also leaves `Set-Cookie` out of what it stores, a choice of ours (issue #16).
 */
import { parseDictionary, Token } from 'structured-headers'
import { joinHeader, type HeaderRecord } from './headers.js'
import { isImfFixdate, parseHttpDate } from './http-date.js'

/** The fields to judge a response by, and the fields it must not be served with from the cache. */
export interface ResponseFields {
  /** One string per field, lower-case names, rewritten as described above. */
  policyHeaders: Record<string, string>
  /**
   * Lower-case names of fields a qualified `no-cache="…"` (and, in shared mode, `private="…"`) lists: the
   * response may be stored and reused without revalidation as long as these fields are left out
   * (RFC 9111 §5.2.2.4, §5.2.2.7). In shared mode `COOKIE_SETTING_FIELDS` too.
   */
  omittedFields: readonly string[]
}

/**
 * Fields that set a cookie for the user whose request reached the origin. A shared cache never stores them
 * and so never replays them to another user (issue #16): RFC 9111 §7.3 would store them unless the origin
 * says `private`, but an origin that forgets to is common, and Squid and Traffic Server strip them too.
 */
export const COOKIE_SETTING_FIELDS = ['set-cookie', 'set-cookie2']

/**
 * Whether a cache may serve a stored response at all: a shared one never serves one holding a field that
 * sets a cookie (one stored before issue #16, or by a private cache on the same store), and counts it as
 * not stored.
 */
export function mayServeStored(headers: HeaderRecord, cache: { shared: boolean }): boolean {
  return !cache.shared || !COOKIE_SETTING_FIELDS.some((name) => headers[name] !== undefined)
}

/** An `Expires` value that every date parser reads as invalid, so as "already expired" (RFC 9111 §5.3). */
const INVALID_EXPIRES = '0'

/**
 * The statuses this cache understands (RFC 9111 §3, §5.2.2.3): those http-cache-semantics implements.
 * 206 and 304 are not among them, so they are never stored.
 */
export const UNDERSTOOD_STATUSES = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501])

/** `effective` is `effectiveCacheControl`'s answer for the same response, when the caller has it already. */
export function readResponseFields(
  status: number,
  headers: HeaderRecord,
  options: { shared: boolean; now: number },
  effective = effectiveCacheControl(status, headers, options.shared),
): ResponseFields {
  const policyHeaders: Record<string, string> = {}
  for (const name in headers) policyHeaders[name] = joinHeader(headers[name])!
  const { omittedFields } = effective
  if (effective.policyField !== undefined) policyHeaders['cache-control'] = effective.policyField

  // §5.1: a list-valued Age counts by its first member; an invalid one is ignored.
  const age = policyHeaders.age?.split(',')[0]?.trim()
  if (age !== undefined && /^\d+$/.test(age)) policyHeaders.age = age
  else delete policyHeaders.age

  // §5.3: an invalid Expires (any other format, or several values) means already expired.
  if (policyHeaders.expires !== undefined) {
    const expires = parseHttpDate(policyHeaders.expires, options.now)
    policyHeaders.expires = expires === undefined ? INVALID_EXPIRES : inPreferredFormat(policyHeaders.expires, expires)
  }
  // An invalid Date or Last-Modified counts as absent (§4.2.3, §4.2.2).
  for (const name of ['date', 'last-modified']) {
    if (policyHeaders[name] === undefined) continue
    const value = parseHttpDate(policyHeaders[name], options.now)
    if (value === undefined) delete policyHeaders[name]
    else policyHeaders[name] = inPreferredFormat(policyHeaders[name], value)
  }

  // RFC 9111 lets a shared cache store a response with Set-Cookie (§7.3 leaves marking it private to the
  // origin); http-cache-semantics refuses it unless `public`. Its decisions never otherwise read the field.
  delete policyHeaders['set-cookie']
  for (const name of omittedFields) delete policyHeaders[name]
  return { policyHeaders, omittedFields: options.shared ? [...omittedFields, ...COOKIE_SETTING_FIELDS] : omittedFields }
}

/**
 * The Cache-Control members a cache obeys (RFC 9111 §5.2), joined fields in, each as `name` or
 * `name=argument`: in a shared cache a valid `CDN-Cache-Control` in its place (RFC 9213), invalid and
 * repeated directives left out, a qualified `no-cache="…"` (and, shared, `private="…"`) turned into fields
 * to omit, and `must-understand` applied. `members` is undefined when the response has no such field.
 */
export function effectiveCacheControl(status: number, headers: HeaderRecord, shared: boolean): EffectiveCacheControl {
  // RFC 9213: a shared cache stands where a CDN or reverse proxy does, and follows `CDN-Cache-Control`,
  // when present and valid, instead of `Cache-Control`.
  const cacheControl = (shared ? cdnCacheControl(joinHeader(headers['cdn-cache-control'])) : undefined) ?? joinHeader(headers['cache-control'])
  if (cacheControl === undefined) return NO_CACHE_CONTROL
  const understood = UNDERSTOOD_STATUSES.has(status)
  const memo = effectiveMemos[(shared ? 2 : 0) + (understood ? 1 : 0)]!
  let effective = memo.get(cacheControl)
  if (effective === undefined) {
    effective = readCacheControl(cacheControl, { shared, understood })
    if (cacheControl.length <= MAX_MEMO_VALUE_LENGTH) {
      if (memo.size >= MAX_MEMO_VALUES) memo.clear()
      memo.set(cacheControl, effective)
    }
  }
  return effective
}

/** `effectiveCacheControl`'s answer: read, never written to (frozen), as one answers many responses. */
export interface EffectiveCacheControl {
  members: readonly string[] | undefined
  omittedFields: readonly string[]
  /**
   * The members as the `Cache-Control` field http-cache-semantics is shown, undefined with `members`: it
   * gives a shared response with proxy-revalidate no freshness at all, while RFC 9111 §5.2.2.8 only forbids
   * serving it stale, which policy.ts reads from the members, so that directive is left out.
   */
  policyField: string | undefined
}

const NO_CACHE_CONTROL: EffectiveCacheControl = Object.freeze({ members: undefined, omittedFields: Object.freeze([]), policyField: undefined })

/**
 * The answers for the field values seen lately, for shared and private caches, statuses understood or not
 * (the four cases whose answers differ): most origins send a few values over and over (`no-store`,
 * `max-age=3600`), and reading one afresh cost every response a handful of strings and arrays. Bounded as
 * KnownUrls is: cleared when full, values longer than a usual field not kept.
 */
const effectiveMemos = [0, 1, 2, 3].map(() => new Map<string, EffectiveCacheControl>())
const MAX_MEMO_VALUES = 256
const MAX_MEMO_VALUE_LENGTH = 256

function readCacheControl(cacheControl: string, context: { shared: boolean; understood: boolean }): EffectiveCacheControl {
  const omittedFields: string[] = []
  const members = []
  const seen = new Set<string>()
  for (const member of splitOutsideQuotes(cacheControl)) {
    const trimmed = member.trim()
    const equals = trimmed.indexOf('=')
    const rawName = equals === -1 ? trimmed : trimmed.slice(0, equals)
    const argument = equals === -1 ? undefined : trimmed.slice(equals + 1)
    // §5.2: `name=argument` has no whitespace around "="; such a directive is invalid and ignored.
    if (/\s$/.test(rawName) || (argument !== undefined && /^\s/.test(argument))) continue
    const name = rawName.toLowerCase()
    // §4.2.1: of a directive given more than once, the first counts.
    if (name === '' || seen.has(name)) continue
    seen.add(name)
    const qualifies = argument !== undefined && (name === 'no-cache' || (name === 'private' && context.shared))
    if (qualifies) {
      omittedFields.push(...fieldNames(argument))
      continue
    }
    members.push(argument === undefined ? name : `${name}=${withinDeltaSeconds(name, argument)}`)
  }
  // §5.2.2.3: with must-understand, a cache that understands the status ignores no-store; one that does
  // not must not store the response at all.
  const others = members.includes('must-understand') ? members.filter((member) => member !== 'no-store') : members
  const effective = members.includes('must-understand') && !context.understood ? [...others, 'no-store'] : others
  const policyField = effective.filter((member) => member !== 'proxy-revalidate').join(', ')
  return Object.freeze({ members: Object.freeze(effective), omittedFields: Object.freeze(omittedFields), policyField })
}

/**
 * A valid HTTP-date as IMF-fixdate, which every date parser reads alike (http-cache-semantics uses
 * `Date.parse`). Most origins send that form already; it is kept as it is rather than formatted again.
 */
function inPreferredFormat(value: string, epoch: number): string {
  return isImfFixdate(value) ? value : new Date(epoch).toUTCString()
}

const DELTA_SECONDS_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error'])

/** `CDN-Cache-Control` as `Cache-Control` directives, if it is a valid RFC 9651 Dictionary (RFC 9213 §2.1). */
function cdnCacheControl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  let dictionary
  try {
    dictionary = parseDictionary(value)
  } catch {
    return undefined // an invalid targeted field is ignored
  }
  const directives: string[] = []
  for (const [name, [item]] of dictionary) {
    // A directive whose value has the wrong type makes the whole field invalid.
    if (DELTA_SECONDS_DIRECTIVES.has(name) && !(typeof item === 'number' && Number.isInteger(item) && item >= 0)) return undefined
    if (item === true) directives.push(name)
    else if (typeof item === 'number' || typeof item === 'string' || item instanceof Token) directives.push(`${name}=${String(item)}`)
    else return undefined
  }
  return directives.join(', ')
}

/** RFC 9111 §1.2.2: a delta-seconds too large to represent counts as 2^31 (2147483648). */
const MAX_DELTA_SECONDS = '2147483648'

/** A directive's delta-seconds argument, no larger than 2^31: read as a number, hundreds of digits would be no freshness at all. */
function withinDeltaSeconds(name: string, argument: string): string {
  if (!DELTA_SECONDS_DIRECTIVES.has(name) || !/^\d{10,}$/.test(argument)) return argument
  return Number(argument) > Number(MAX_DELTA_SECONDS) ? MAX_DELTA_SECONDS : argument
}

/** The field names of a qualified directive's argument: `"a, B"` or `a`. */
function fieldNames(argument: string): string[] {
  return argument
    .replace(/^"|"$/g, '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '')
}

/** Splits a list field on the commas that are not inside a quoted string. */
export function splitOutsideQuotes(value: string): string[] {
  const members: string[] = []
  let start = 0
  let quoted = false
  for (let index = 0; index < value.length; index++) {
    const char = value[index]
    if (char === '\\' && quoted) index++
    else if (char === '"') quoted = !quoted
    else if (char === ',' && !quoted) {
      members.push(value.slice(start, index))
      start = index + 1
    }
  }
  members.push(value.slice(start))
  return members
}
