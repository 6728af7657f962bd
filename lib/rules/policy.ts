/**
 * The cache's decisions (RFC 9111), pure functions of an entry, a request and the clock. This is the only
 * file that imports http-cache-semantics: storability and freshness lifetime come from it; the choice of
 * what to do with a stored response is made here from the numbers it gave when the response was stored,
 * so that a hit costs arithmetic, not a re-parse of the stored headers.
 */
import CachePolicy from 'http-cache-semantics'
import { lifetimeOf, type ConfiguredTtl } from './expiry-rules.js'
import { joinHeader, type HeaderRecord, type RequestHeaders } from './headers.js'
import { parseHttpDate } from './http-date.js'
import { NO_DIRECTIVES, parseCacheControl, parseDeltaSeconds, parseRequestDirectives, parseVary, type Directives } from './directives.js'
import { effectiveCacheControl, readResponseFields, UNDERSTOOD_STATUSES, type EffectiveCacheControl } from './response-fields.js'
import type { ResponseEntry } from '../stores/store.js'

export interface PolicyRequest {
  method: string
  url: string
  headers: RequestHeaders
}

export interface PolicyResponse {
  status: number
  headers: HeaderRecord
}

/**
 * A request as http-cache-semantics is to judge it: the stored (normalised) URL, and a method it stores.
 * Methods cached with their body in the key (`methods: ['POST']`) are the user's choice to cache like a
 * GET of the resource that URL and body name, so they are judged as GET (http-cache-semantics would
 * otherwise store a POST response only with explicit freshness, and a QUERY response never).
 */
export function policyRequestOf(request: { method: string; storedUrl: string; headers: RequestHeaders }): PolicyRequest {
  return { method: request.method === 'HEAD' ? 'HEAD' : 'GET', url: request.storedUrl, headers: request.headers }
}

/** What a storable response contributes to its entry. */
export interface StorableResponse {
  lifetimeSeconds: number
  initialAgeSeconds: number
  /** Lower-case names of the request headers its `Vary` names; empty without `Vary`. */
  varyNames: string[]
  /** Fields the response may not be reused with (qualified `no-cache`; when shared, `private` and `Set-Cookie`): never stored. */
  omittedFields: readonly string[]
  policy: Record<string, unknown>
}

/** Why a request went to the origin, in RFC 9211 `fwd` terms. */
export type ForwardReason = 'uri-miss' | 'vary-miss' | 'miss' | 'stale' | 'request' | 'method' | 'bypass'

export type Decision =
  /** Serve the stored response: fresh (`hit`), or stale because the request allows it (`max-stale`). */
  | { action: 'serve'; entry: ResponseEntry; status: 'hit' | 'stale' }
  /** RFC 5861 §3: serve the stale response now and revalidate it in the background. */
  | { action: 'serve-stale-and-revalidate'; entry: ResponseEntry }
  /** The stored response may not be served as it is: ask the origin, conditionally where it has validators. */
  | { action: 'revalidate'; entry: ResponseEntry; reason: 'stale' | 'request' }
  | { action: 'forward'; reason: ForwardReason }
  | { action: 'gateway-timeout'; reason: ForwardReason }

/**
 * What the user configured about storing: a URL's ttl (`defaultTtl`, `urlsExpireAfter`), `allowedStatuses`,
 * and `staleIfError`, which keeps entries of use past their freshness (retention.ts).
 */
export interface StorageRules {
  configuredTtl: ConfiguredTtl | undefined
  allowedStatuses: ReadonlySet<number> | undefined
  staleIfError?: boolean | number | undefined
}

/**
 * Whether a response may be stored (RFC 9111 §3), and if so its freshness numbers. `undefined` means
 * "do not store". `now` is when the response arrived (epoch ms).
 */
export function evaluateResponse(
  request: PolicyRequest,
  response: PolicyResponse,
  options: { shared: boolean; now: number; requestTime?: number; rules?: StorageRules },
): StorableResponse | undefined {
  const { configuredTtl, allowedStatuses } = options.rules ?? NO_RULES
  if (configuredTtl === 'no-store' || (allowedStatuses !== undefined && !allowedStatuses.has(response.status))) return undefined
  const varyNames = parseVary(response.headers.vary)
  // RFC 9111 §4.1: "Vary: *" never matches a later request, so storing it would only waste space.
  if (varyNames.includes('*')) return undefined
  const effective = effectiveCacheControl(response.status, response.headers, options.shared)
  // §3: never stored with `no-store` in the request (§5.2.1.5; names in any case, §5.2, which http-cache-
  // semantics reads case-sensitively) or in the response's directives as the cache obeys them. Said before
  // the fields are copied and a CachePolicy is built, which every no-store miss paid for (issue #17).
  if (effective.members?.includes('no-store') || parseRequestDirectives(request.headers).has('no-store')) return undefined
  const { policyHeaders, omittedFields } = readResponseFields(response.status, response.headers, options, effective)
  const directives = policyDirectives(effective)
  const explicit = hasExplicitFreshness(directives, policyHeaders, options.shared)
  // A status the user listed in allowedStatuses, given freshness by a configured ttl, is judged as a 200.
  const chosen = configuredTtl !== undefined && allowedStatuses?.has(response.status) === true
  const status = chosen ? 200 : statusForPolicy(response.status, directives, policyHeaders, options.shared)
  if (status === undefined) return undefined
  const policy = new CachePolicy(
    { method: request.method, url: request.url, headers: request.headers },
    { status, headers: policyHeaders },
    { shared: options.shared },
  )
  if (!policy.storable()) return undefined
  return {
    // A configured ttl stands in for the heuristic only: explicit freshness is the origin's word.
    lifetimeSeconds: explicit || configuredTtl === undefined ? policy.maxAge() : lifetimeOf(configuredTtl),
    initialAgeSeconds: initialAgeSeconds(policyHeaders, options.now, options.requestTime ?? options.now),
    varyNames,
    omittedFields,
    policy: storedPolicy({ shared: options.shared, status, responseStatus: response.status, requestHeaders: request.headers }),
  }
}

/** The directives of each `Cache-Control` answer, parsed once: most answers serve many responses (see effectiveCacheControl). */
const directivesByAnswer = new WeakMap<EffectiveCacheControl, Directives>()

/** The directives http-cache-semantics is shown for a response: its `policyField`, parsed. */
function policyDirectives(effective: EffectiveCacheControl): Directives {
  if (effective.policyField === undefined) return NO_DIRECTIVES
  let directives = directivesByAnswer.get(effective)
  if (directives === undefined) {
    directives = parseCacheControl(effective.policyField)
    directivesByAnswer.set(effective, directives)
  }
  return directives
}

/**
 * The status to show http-cache-semantics, which stores only the statuses it understands. RFC 9111 §3 lets
 * a cache store any other final status (not 206 or 304) when the response gives explicit freshness
 * (`max-age`, `s-maxage` when shared, `Expires`) or is `public`, which also allows heuristic freshness
 * (§4.2.2); such a response is judged as a 200 would be. `undefined`: never stored.
 */
function statusForPolicy(status: number, directives: Directives, headers: Record<string, string>, shared: boolean): number | undefined {
  if (UNDERSTOOD_STATUSES.has(status)) return status
  if (status < 200 || status === 206 || status === 304) return undefined
  const explicit =
    directives.has('max-age') || (shared && directives.has('s-maxage')) || headers.expires !== undefined || directives.has('public')
  return explicit ? 200 : undefined
}

const NO_RULES: StorageRules = { configuredTtl: undefined, allowedStatuses: undefined }

/**
 * Whether the origin said how long the response is fresh (RFC 9111 §4.2.1): `max-age`, `s-maxage` in a
 * shared cache, or `Expires`; then no configured ttl applies. `no-cache` counts too: it says "never
 * without revalidation", which no configured ttl may loosen.
 */
function hasExplicitFreshness(directives: Directives, headers: Record<string, string>, shared: boolean): boolean {
  return directives.has('max-age') || (shared && directives.has('s-maxage')) || headers.expires !== undefined || directives.has('no-cache')
}

/**
 * RFC 9111 §4.2.3: the age a response already had when it arrived (`now`) is the larger of how far its
 * `Date` lies in the past and its `Age` field plus the time the request took (`requestTime` is when it was
 * sent), which the response aged on its way. `readResponseFields` has dropped a malformed `Age` or `Date`.
 */
function initialAgeSeconds(headers: Record<string, string>, now: number, requestTime: number): number {
  const responseDelaySeconds = Math.max(0, now - requestTime) / 1000
  const correctedAgeValue = (parseDeltaSeconds(headers.age) ?? 0) + responseDelaySeconds
  const date = parseHttpDate(headers.date)
  const apparentAge = date === undefined ? 0 : Math.max(0, (now - date) / 1000)
  return Math.max(correctedAgeValue, apparentAge)
}

/** Decides what to do with a request given the entry stored for it (RFC 9111 §4, §5.2.1; RFC 5861). */
export function decide(
  entry: ResponseEntry | undefined,
  request: PolicyRequest,
  options: { shared: boolean; now: number; missReason: 'uri-miss' | 'vary-miss' },
): Decision {
  const requestDirectives = parseRequestDirectives(request.headers)
  // RFC 9111 §5.2.1.7: only-if-cached and nothing usable stored means 504, never a request to the origin.
  const onlyIfCached = requestDirectives.has('only-if-cached')

  if (entry === undefined) return forward(options.missReason, onlyIfCached)
  // A stored HEAD response has no body to give a GET.
  if (entry.method === 'HEAD' && request.method !== 'HEAD') return forward('miss', onlyIfCached)
  if (requestDirectives.has('no-cache')) return revalidate(entry, 'request', onlyIfCached)

  const ageSeconds = currentAgeSeconds(entry, options.now)
  const ttlSeconds = entry.lifetimeSeconds - ageSeconds
  const maxAge = parseDeltaSeconds(requestDirectives.get('max-age'))
  if (maxAge !== undefined && ageSeconds > maxAge) return revalidate(entry, 'request', onlyIfCached)
  const minFresh = parseDeltaSeconds(requestDirectives.get('min-fresh'))
  if (minFresh !== undefined && ttlSeconds < minFresh) return revalidate(entry, 'request', onlyIfCached)

  if (ttlSeconds > 0) return { action: 'serve', entry, status: 'hit' }
  const staleness = { staleSeconds: -ttlSeconds, shared: options.shared }
  if (maxStaleAllows(entry, requestDirectives, staleness)) return { action: 'serve', entry, status: 'stale' }
  if (staleWhileRevalidateAllows(entry, staleness)) return { action: 'serve-stale-and-revalidate', entry }
  return revalidate(entry, 'stale', onlyIfCached)
}

function forward(reason: ForwardReason, onlyIfCached: boolean): Decision {
  return onlyIfCached ? { action: 'gateway-timeout', reason } : { action: 'forward', reason }
}

function revalidate(entry: ResponseEntry, reason: 'stale' | 'request', onlyIfCached: boolean): Decision {
  return onlyIfCached ? { action: 'gateway-timeout', reason } : { action: 'revalidate', entry, reason }
}

/** RFC 9111 §5.2.1.1: `max-stale` lets a stale response be served, unless the response forbids it. */
function maxStaleAllows(entry: ResponseEntry, requestDirectives: Directives, context: { staleSeconds: number; shared: boolean }): boolean {
  const maxStale = requestDirectives.get('max-stale')
  if (maxStale === undefined || forbidsStale(entry, context.shared)) return false
  if (maxStale === true) return true
  const limit = parseDeltaSeconds(maxStale)
  return limit !== undefined && context.staleSeconds <= limit
}

/** RFC 5861 §3: within the response's `stale-while-revalidate` window, serve stale and revalidate behind. */
function staleWhileRevalidateAllows(entry: ResponseEntry, context: { staleSeconds: number; shared: boolean }): boolean {
  const window = parseDeltaSeconds(responseDirectives(entry, context.shared).get('stale-while-revalidate'))
  return window !== undefined && context.staleSeconds <= window && !forbidsStale(entry, context.shared)
}

/**
 * RFC 5861 §4: whether a stale entry may be served because the origin failed (a 500, 502, 503 or 504, or
 * no response at all). The window is the largest of the response's and the request's `stale-if-error`
 * and the `staleIfError` option (`true`: any staleness; `false`: never, whatever the directives say).
 */
export function staleIfErrorAllows(
  entry: ResponseEntry,
  request: PolicyRequest,
  options: { shared: boolean; now: number; staleIfError: boolean | number | undefined },
): boolean {
  if (options.staleIfError === false || forbidsStale(entry, options.shared)) return false
  const staleSeconds = Math.max(0, -ttlSeconds(entry, options.now))
  if (options.staleIfError === true) return true
  const windows = [
    parseDeltaSeconds(responseDirectives(entry, options.shared).get('stale-if-error')),
    parseDeltaSeconds(parseRequestDirectives(request.headers).get('stale-if-error')),
    options.staleIfError,
  ].filter((window) => window !== undefined)
  return windows.some((window) => staleSeconds <= window)
}

/** RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.4, §5.2.2.8, §5.2.2.10: directives that forbid serving a stale response. */
function forbidsStale(entry: ResponseEntry, shared: boolean): boolean {
  const directives = responseDirectives(entry, shared)
  if (directives.has('must-revalidate') || directives.has('no-cache')) return true
  return shared && (directives.has('proxy-revalidate') || directives.has('s-maxage'))
}

/**
 * The stored response's directives as the cache obeys them (response-fields.ts): the targeted field's in a
 * shared cache, and a qualified `no-cache="…"` restricting only the fields it names, which were not stored.
 */
function responseDirectives(entry: ResponseEntry, shared: boolean): Directives {
  return parseCacheControl(effectiveCacheControl(entry.status, entry.headers, shared).members?.join(','))
}

/**
 * The headers of a request that revalidates `entry` (RFC 9111 §4.3.1), from http-cache-semantics: the
 * caller's headers without hop-by-hop fields, with `If-None-Match` from the entry's `ETag` and
 * `If-Modified-Since` from its `Last-Modified` (for GET and HEAD entries).
 */
export function revalidationHeaders(entry: ResponseEntry, request: { method: string; headers: RequestHeaders }): RequestHeaders {
  const policyRequest = policyRequestOf({ method: request.method, storedUrl: entry.url, headers: request.headers })
  // The request matched this entry's variant when it was looked up (values normalised, absent fields
  // included: variants.ts). http-cache-semantics would compare the raw values again and, where only their
  // spelling differs or a field is absent, leave the validators out; so it is shown the request's own.
  const stored = { ...storedPolicyObject(entry), resh: joinHeaders(entry.headers), reqh: policyRequest.headers }
  const policy = CachePolicy.fromObject(stored)
  const headers = policy.revalidationHeaders(policyRequest) as RequestHeaders
  // RFC 9110 §13.1.2: a method other than GET and HEAD whose If-None-Match matches is not performed (a 412
  // answers it), so an entry of a method cached with its body (`methods: ['POST']`) is asked for in full.
  if (entry.method !== 'GET' && entry.method !== 'HEAD') {
    delete headers['if-none-match']
    delete headers['if-modified-since']
  }
  return headers
}

/**
 * What an entry keeps of its http-cache-semantics policy: only what the entry itself does not say (issue
 * #17). Its `toObject()` form repeated the URL, the method, the status and the parsed Cache-Control, and
 * cost about 300 bytes of heap per entry in objects and strings; most entries now share one of two frozen
 * objects. Revalidation, which alone reads a stored policy, builds the policy again from the entry.
 */
interface CompactPolicy {
  v: typeof COMPACT_POLICY_VERSION
  shared: boolean
  /** The status the policy judged the response as, where not its own (see statusForPolicy). */
  status?: number
  /** The request's `Host` field, which the policy compares with a later request's. */
  host?: string
}

/** Tells a compact policy from an http-cache-semantics `toObject()` form (its `v` is 1), stored before it. */
const COMPACT_POLICY_VERSION = 2
const SHARED_POLICY: CompactPolicy = Object.freeze({ v: COMPACT_POLICY_VERSION, shared: true })
const PRIVATE_POLICY: CompactPolicy = Object.freeze({ v: COMPACT_POLICY_VERSION, shared: false })

/** The compact policy of a response `evaluateResponse` judged storable: a shared one where the entry says the rest. */
function storedPolicy(judged: { shared: boolean; status: number; responseStatus: number; requestHeaders: RequestHeaders }): Record<string, unknown> {
  const { shared, status, responseStatus, requestHeaders } = judged
  const host = requestHeaders.host
  if (status === responseStatus && host === undefined) return (shared ? SHARED_POLICY : PRIVATE_POLICY) as unknown as Record<string, unknown>
  const policy: CompactPolicy = { v: COMPACT_POLICY_VERSION, shared }
  if (status !== responseStatus) policy.status = status
  if (host !== undefined) policy.host = host
  return policy as unknown as Record<string, unknown>
}

/**
 * The http-cache-semantics form of the entry's policy, without its request and response headers (the caller
 * gives them): from a compact policy, the policy built again as `evaluateResponse` built it, from the
 * stored response, judged by the fields as they were then (response-fields.ts). A form written before
 * issue #17 is read as it is; anything else throws, as http-cache-semantics does.
 */
function storedPolicyObject(entry: ResponseEntry): CachePolicy.CachePolicyObject {
  const stored = entry.policy as Partial<CompactPolicy>
  if (stored.v !== COMPACT_POLICY_VERSION) return entry.policy as unknown as CachePolicy.CachePolicyObject
  const shared = stored.shared === true
  const { policyHeaders } = readResponseFields(entry.status, entry.headers, { shared, now: entry.createdAt })
  // A request's `Authorization` only ever made the response not storable, and this one was stored.
  const requestHeaders: RequestHeaders = stored.host === undefined ? {} : { host: stored.host }
  const request = { method: entry.method === 'HEAD' ? 'HEAD' : 'GET', url: entry.url, headers: requestHeaders }
  return new CachePolicy(request, { status: stored.status ?? entry.status, headers: policyHeaders }, { shared }).toObject()
}

/** The entry's current age (RFC 9111 §4.2.3), in seconds. */
export function currentAgeSeconds(entry: ResponseEntry, now: number): number {
  return entry.initialAgeSeconds + Math.max(0, now - entry.createdAt) / 1000
}

/** How much longer the entry is fresh, in seconds; negative once stale. */
export function ttlSeconds(entry: ResponseEntry, now: number): number {
  return entry.lifetimeSeconds - currentAgeSeconds(entry, now)
}

/** When the entry stops being fresh (epoch ms). */
export function expiresAt(entry: ResponseEntry): number {
  return entry.createdAt + (entry.lifetimeSeconds - entry.initialAgeSeconds) * 1000
}

function joinHeaders(headers: HeaderRecord): Record<string, string> {
  const joined: Record<string, string> = {}
  for (const name in headers) joined[name] = joinHeader(headers[name])!
  return joined
}
