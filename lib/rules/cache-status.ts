/**
 * The RFC 9211 `Cache-Status` response field: written on every response that passes through the cache,
 * and read back by `cacheInfo()`.
 */
import { parseItem, parseList, Token, type List } from 'structured-headers'
import type { HeaderRecord } from './headers.js'
import type { ForwardReason } from './policy.js'
import { splitOutsideQuotes } from './response-fields.js'

/** What happened to a response, in the terms users ask about. */
export type CacheStatus = 'hit' | 'miss' | 'revalidated' | 'stale' | 'bypass'

/** The parameters of this cache's member of `Cache-Status` (RFC 9211 §2). */
export type CacheStatusParameters =
  | { hit: true; ttlSeconds: number; key: string }
  | { fwd: ForwardReason; fwdStatus?: number; stored?: boolean; ttlSeconds?: number; key?: string; detail?: CacheStatusDetail }
  /**
   * The 504 that answers `only-if-cached` when nothing usable is stored (RFC 9111 §5.2.1.7): neither a hit
   * nor sent forward (RFC 9211 §2.2: `fwd` says the request went forward), so `detail` alone says why.
   */
  | { detail: 'only-if-cached' }

/**
 * RFC 9211 §2.8 `detail`: `stale-if-error` marks a stale response served because the origin failed
 * (`fwd-status` then gives the origin's error status, or is absent when no response came at all).
 */
export type CacheStatusDetail = 'stale-if-error'

/** Serialises this cache's member. The names used are tokens; a key is written as an RFC 9651 String. */
export function formatCacheStatus(cacheName: string, parameters: CacheStatusParameters): string {
  let member = cacheName
  if ('hit' in parameters) member += '; hit'
  else if ('fwd' in parameters) {
    member += `; fwd=${parameters.fwd}`
    if (parameters.fwdStatus !== undefined) member += `; fwd-status=${parameters.fwdStatus}`
    if (parameters.stored) member += '; stored'
  }
  if ('ttlSeconds' in parameters && parameters.ttlSeconds !== undefined) member += `; ttl=${ttlParameter(parameters.ttlSeconds)}`
  const key = 'key' in parameters && parameters.key !== undefined ? structuredString(parameters.key) : undefined
  if (key !== undefined) member += `; key=${key}`
  if ('detail' in parameters && parameters.detail !== undefined) member += `; detail=${parameters.detail}`
  return member
}

/** A member in both forms: the field's text, and its bytes for a raw header list. */
export interface FormattedMember {
  text: string
  raw: Buffer
}

/** The members of responses sent on and not stored, by cache name, then `fwd`: a handful, made once each. */
const notStoredMembers = new Map<string, Map<ForwardReason, FormattedMember>>()
/** More would be a program making caches under ever new names: the memo starts afresh then. */
const MAX_CACHE_NAMES = 64

/**
 * The member of a response sent on to the origin and not stored (`fwd` alone), which depends on nothing
 * else: every miss the cache does not store, and every bypass, would otherwise format and encode it anew.
 */
export function notStoredMember(cacheName: string, fwd: ForwardReason): FormattedMember {
  let byReason = notStoredMembers.get(cacheName)
  if (byReason === undefined) {
    if (notStoredMembers.size >= MAX_CACHE_NAMES) notStoredMembers.clear()
    byReason = new Map()
    notStoredMembers.set(cacheName, byReason)
  }
  let member = byReason.get(fwd)
  if (member === undefined) {
    const text = formatCacheStatus(cacheName, { fwd })
    member = { text, raw: Buffer.from(text, 'latin1') }
    byReason.set(fwd, member)
  }
  return member
}

/** The largest magnitude of an RFC 9651 Integer (15 digits). */
const MAX_STRUCTURED_INTEGER = 999_999_999_999_999

/** The `ttl` parameter for `seconds` of freshness left, within what an RFC 9651 Integer can say. */
export function ttlParameter(seconds: number): number {
  // Rounded away from zero, so that the sign says fresh or stale and ttl is never 0: 0.4 s left is fresh
  // (ttl=1); 0.4 s past its lifetime, or exactly at it (RFC 9111 §4.2: fresh while lifetime > age), a
  // response is stale (ttl=-1), as RFC 9211 §2.4's negative ttl says (issue #16).
  const whole = seconds > 0 ? Math.ceil(seconds) : Math.min(-1, Math.floor(seconds))
  return Math.min(MAX_STRUCTURED_INTEGER, Math.max(-MAX_STRUCTURED_INTEGER, whole))
}

/**
 * RFC 9651 §3.3.3: a String holds printable ASCII, with `"` and `\` escaped. The default keys are base64url;
 * a custom key function's key that cannot be written so is left out of the field (`undefined`).
 */
function structuredString(value: string): string | undefined {
  if (BASE64URL.test(value)) return `"${value}"` // the default keys: nothing to check or escape
  if (!/^[\x20-\x7e]*$/.test(value)) return undefined
  return `"${value.replace(/[\\"]/g, '\\$&')}"`
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

/**
 * Headers with this cache's member appended: RFC 9211 §2 orders members from the origin towards the user,
 * so members written by caches nearer the origin stay in front.
 */
export function withCacheStatus(headers: HeaderRecord, member: string): HeaderRecord {
  return { ...headers, 'cache-status': appendCacheStatus(headers['cache-status'], member) }
}

/** A `Cache-Status` value: the members already there (one field or several), then this cache's. */
export function appendCacheStatus(existing: string | string[] | undefined, member: string): string {
  return existing === undefined ? member : [...[existing].flat(), member].join(', ')
}

/** Cache metadata of one response, read from its `Cache-Status` and `Age` fields. */
export interface CacheInfo {
  /** Whether the body came from the cache (a hit, a stale entry or a 304-revalidated entry). */
  fromCache: boolean
  /** What happened; `undefined` when the response carries no member of this cache. */
  status: CacheStatus | undefined
  /** When the response was generated, from its `Age` (to the second); `undefined` if not stored. */
  createdAt: Date | undefined
  /** When the response stops being fresh, from the member's `ttl` (to the second). */
  expires: Date | undefined
  /** Whether it was already stale when served. */
  isExpired: boolean
  /** Whether it was revalidated with the origin (a 304) before being served. */
  revalidated: boolean
  /** The key it is stored under, when the member says so. */
  cacheKey: string | undefined
}

/** Response headers in any shape undici hands them over: a record (`request()`), or a `Headers` object (`fetch()`). */
type HeadersInput = HeaderRecord | Record<string, string | string[] | undefined> | { get(name: string): string | null }

/**
 * Reads the cache metadata of a response from its headers: undici `request()` headers, a fetch `Headers`
 * object, or any record. `cacheName` is the `cacheStatus` option the cache was created with.
 */
export function cacheInfo(headers: HeadersInput, cacheName = 'undici-http-cache'): CacheInfo {
  const member = findMember(readHeader(headers, 'cache-status'), cacheName)
  const now = Date.now()
  const info: CacheInfo = {
    fromCache: false,
    status: undefined,
    createdAt: undefined,
    expires: undefined,
    isExpired: false,
    revalidated: false,
    cacheKey: undefined,
  }
  if (member === undefined) return info
  const fwd = member.get('fwd')?.toString()
  const fwdStatus = member.get('fwd-status')
  const ttl = member.get('ttl')
  const key = member.get('key')
  const hit = member.get('hit') === true
  const staleIfError = member.get('detail')?.toString() === 'stale-if-error'
  info.revalidated = !hit && fwdStatus === 304
  info.fromCache = hit || info.revalidated || staleIfError
  info.status = classify({ hit, fwd, revalidated: info.revalidated, staleIfError, ttl: typeof ttl === 'number' ? ttl : undefined })
  info.isExpired = typeof ttl === 'number' && ttl <= 0
  if (typeof ttl === 'number') info.expires = new Date(now + ttl * 1000)
  if (typeof key === 'string') info.cacheKey = key
  if (info.fromCache || member.get('stored') === true) {
    const ageSeconds = Number(readHeader(headers, 'age') ?? 0)
    info.createdAt = new Date(now - (Number.isFinite(ageSeconds) ? ageSeconds : 0) * 1000)
  }
  return info
}

/** What `cacheInfo().status` reads from a member with these parameters, without formatting and parsing it. */
export function statusOf(parameters: CacheStatusParameters): CacheStatus {
  if ('hit' in parameters) return classify({ hit: true, fwd: undefined, revalidated: false, staleIfError: false, ttl: ttlParameter(parameters.ttlSeconds) })
  if (!('fwd' in parameters)) return 'miss' // the 504 for only-if-cached
  return classify({
    hit: false,
    fwd: parameters.fwd,
    revalidated: parameters.fwdStatus === 304,
    staleIfError: parameters.detail === 'stale-if-error',
    ttl: parameters.ttlSeconds === undefined ? undefined : ttlParameter(parameters.ttlSeconds),
  })
}

function classify(member: {
  hit: boolean
  fwd: string | undefined
  revalidated: boolean
  staleIfError: boolean
  ttl: number | undefined
}): CacheStatus {
  const { hit, fwd, revalidated, staleIfError, ttl } = member
  if (revalidated) return 'revalidated'
  if (staleIfError) return 'stale'
  if (hit) return ttl !== undefined && ttl <= 0 ? 'stale' : 'hit'
  // Only fwd=bypass says the cache took no part. fwd=method (a method it does not cache) and an
  // only-if-cached 504 (nothing usable stored, nothing sent) are misses, as fwd=request is (issue #16).
  return fwd === 'bypass' ? 'bypass' : 'miss'
}

/** The parameters of the last member named `cacheName` (the one nearest the user), if any. */
function findMember(value: string | undefined, cacheName: string): Map<string, unknown> | undefined {
  if (!value) return undefined
  const members = parseMembers(value)
  for (let index = members.length - 1; index >= 0; index--) {
    const [item, parameters] = members[index]!
    const name = item instanceof Token || typeof item === 'string' ? item.toString() : undefined
    if (name === cacheName) return parameters
  }
  return undefined
}

/**
 * The field's members. A cache nearer the origin may have written one that is not valid RFC 9651
 * (`Example CDN; hit`, `HIT from edge-1`), and the field then fails to parse as a List: each member is
 * then parsed on its own, and those that fail are left out, so that this cache's member is still read.
 */
function parseMembers(value: string): List {
  try {
    return parseList(value)
  } catch {
    return splitOutsideQuotes(value).flatMap((member) => {
      try {
        return [parseItem(member.trim())]
      } catch {
        return [] // a member of another cache that cannot be read: not ours either
      }
    })
  }
}

function readHeader(headers: HeadersInput, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined
  }
  const value = (headers as Record<string, string | string[] | undefined>)[name]
  return Array.isArray(value) ? value.join(', ') : value
}
