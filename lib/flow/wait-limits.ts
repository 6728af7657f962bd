/**
 * How long a coalesced request may wait on the identical request it joined (issue #16): never longer than it
 * would have waited for an answer of its own. A request's limits are undici's `headersTimeout` (until the
 * response head) and `bodyTimeout` (between body chunks): the request's own dispatch options when it gives
 * them, otherwise its dispatcher's defaults, which the cache knows only for the `Agent` that `CachingAgent`
 * makes itself.
 */
import { performance } from 'node:perf_hooks'
import { errors, type Dispatcher } from 'undici'

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
 * What a request's flight identity adds so that it waits only on requests whose limits it can compare with
 * its own (issue #16): '' where the dispatcher's defaults are known. Where they are not, a timeout the request
 * gives itself cannot be compared with the unknown default of one that does not: a waiter relying on its
 * dispatcher's 500 ms would wait out a leader's own 8 s, and one giving itself 8 s would be failed with a
 * leader's 500 ms default. So, phase by phase, requests that give the option wait only on others that give
 * it too (known limits, which WaitTimer and isSharedFailure compare), and requests that leave it to the
 * dispatcher only on others that do (the one default: the flights are the dispatcher's own).
 */
export function comparableLimitsTag(options: Dispatcher.DispatchOptions, defaults: WaitLimits): string {
  const headers = defaults.headersTimeoutMs === undefined && options.headersTimeout != null ? 'h' : ''
  const body = defaults.bodyTimeoutMs === undefined && options.bodyTimeout != null ? 'b' : ''
  return headers + body
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

/** The longest delay `setTimeout` takes (2^31 - 1 ms); a longer one fires after 1 ms. */
const MAX_TIMER_DELAY_MS = 2_147_483_647

/** Which of its limits a waiter's wait is measured against now: the leader's response head, then its body. */
export type WaitPhase = 'headers' | 'body' | 'done'

/**
 * A waiter's own clock: its wait ends with undici's own timeout error (so callers see the code they would
 * have seen) when the leader's response head has not come within its `headersTimeout` of its start, or the
 * body stands still for its `bodyTimeout`, as undici measures them; the waiter then goes on as if its own
 * request had met that error. This is what bounds a waiter whose limits are shorter than the leader's.
 * undici checks its own timeouts on a coarse tick (a 500 ms timeout fires after 0.5-1 s); this clock is
 * exact, so a waiter never fails later than undici would have failed it. `performance.now()`: tests fake `Date`.
 */
export class WaitTimer {
  readonly #limits: WaitLimits
  readonly #startedAt = performance.now()
  readonly #expire: (error: Error) => void
  #timer: NodeJS.Timeout | undefined

  constructor(limits: WaitLimits, expire: (error: Error) => void) {
    this.#limits = limits
    this.#expire = expire
  }

  /** (Re)starts the clock for `phase`; `progressAt` is when the leader last received body bytes. */
  arm(phase: WaitPhase, progressAt: () => number): void {
    this.stop()
    const limitMs = phase === 'headers' ? this.#limits.headersTimeoutMs : phase === 'body' ? this.#limits.bodyTimeoutMs : undefined
    if (!limitMs) return // none, or not known: the leader's failure, handed on, ends the wait
    const since = phase === 'headers' ? this.#startedAt : Math.max(this.#startedAt, progressAt())
    const leftMs = limitMs - (performance.now() - since)
    if (leftMs <= 0) return this.#expire(phase === 'headers' ? new errors.HeadersTimeoutError() : new errors.BodyTimeoutError())
    // Checked again when it fires: body bytes that came meanwhile put the limit further off. A longer delay
    // than a timer takes would fire at once, so it is checked again on the way.
    this.#timer = setTimeout(() => this.arm(phase, progressAt), Math.min(leftMs, MAX_TIMER_DELAY_MS)).unref()
  }

  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
