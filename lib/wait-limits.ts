/**
 * How long a coalesced request may wait on the identical request it joined (issue #16): never longer than it
 * would have waited for an answer of its own. A request's limits are undici's `headersTimeout` (until the
 * response head) and `bodyTimeout` (between body chunks): the request's own dispatch options when it gives
 * them, otherwise its dispatcher's defaults, which the cache knows only for the `Agent` that `CachingAgent`
 * makes itself.
 */
import type { Dispatcher } from 'undici'

/** A request's timeouts in ms (0: none), or `undefined` where the cache cannot know them. */
export interface WaitLimits {
  headersTimeoutMs: number | undefined
  bodyTimeoutMs: number | undefined
}

/** undici's default `headersTimeout` and `bodyTimeout`, which an `Agent` made without them uses. */
const UNDICI_DEFAULT_TIMEOUT_MS = 300_000

/** The defaults of an `Agent` made with `agentOptions`: its own, or undici's. */
export function agentWaitLimits(agentOptions: { headersTimeout?: number; bodyTimeout?: number } | undefined): WaitLimits {
  return {
    headersTimeoutMs: agentOptions?.headersTimeout ?? UNDICI_DEFAULT_TIMEOUT_MS,
    bodyTimeoutMs: agentOptions?.bodyTimeout ?? UNDICI_DEFAULT_TIMEOUT_MS,
  }
}

/** Limits nobody knows: those of a dispatcher the user made (its defaults are its own). */
export const UNKNOWN_WAIT_LIMITS: WaitLimits = { headersTimeoutMs: undefined, bodyTimeoutMs: undefined }

/** One request's limits: its own dispatch options first, as undici reads them, then its dispatcher's defaults. */
export function waitLimitsOf(options: Dispatcher.DispatchOptions, defaults: WaitLimits): WaitLimits {
  return {
    headersTimeoutMs: options.headersTimeout ?? defaults.headersTimeoutMs,
    bodyTimeoutMs: options.bodyTimeout ?? defaults.bodyTimeoutMs,
  }
}

/**
 * Whether a waiter is handed the failure of the request it waited on rather than sent to the origin on its
 * own. Only a timeout is: the origin did not answer within the leader's limit, and a request of the waiter's
 * own, starting from nothing, would wait the same again and fail later than the leader did; so a waiter fails
 * with it at once, unless it allows longer for that phase than the leader did: then it would have waited on
 * without the cache, and goes on alone. Other failures leave the waiters free to try: a reset or refused
 * connection fails fast, and a request of one's own may well succeed (a keep-alive connection the origin
 * closed under the leader, a server restarting); an abort by the leader's caller is not the origin's failure.
 */
export function isSharedFailure(failure: Error, limits: { waiter: WaitLimits; leader: WaitLimits }): boolean {
  const code = (failure as { code?: unknown }).code
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return !allowsLonger(limits.waiter.headersTimeoutMs, limits.leader.headersTimeoutMs)
  if (code === 'UND_ERR_BODY_TIMEOUT') return !allowsLonger(limits.waiter.bodyTimeoutMs, limits.leader.bodyTimeoutMs)
  // Connecting has one limit for every request to an origin (the dispatcher's `connect.timeout`).
  return code === 'UND_ERR_CONNECT_TIMEOUT'
}

/** Unknown limits count as the same: both are the one dispatcher's defaults, or the waiter fails no later. */
function allowsLonger(waiterMs: number | undefined, leaderMs: number | undefined): boolean {
  if (waiterMs === undefined || leaderMs === undefined || leaderMs === 0) return false
  return waiterMs === 0 || waiterMs > leaderMs
}
