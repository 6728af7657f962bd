import type { Dispatcher } from 'undici'
import type { CacheStatusDetail, CacheStatusParameters } from '../rules/cache-status.js'
import { CallerController, NO_SOURCE } from './controller.js'
import type { FlightReport } from './coalescing.js'
import type { GuardedStore } from '../stores/guarded-store.js'
import type { HeaderRecord } from '../rules/headers.js'
import type { KeyedRequest } from '../keys/key.js'
import { filterAllows, type ResponseFilter } from '../keys/filter.js'
import type { PendingBytes } from './pending-bytes.js'
import { policyRequestOf, ttlSeconds, type StorageRules } from '../rules/policy.js'
import { COOKIE_SETTING_FIELDS } from '../rules/response-fields.js'
import { serveEntry } from './serve.js'
import type { StatsCounters } from '../stats.js'
import type { ResponseEntry } from '../stores/store.js'
import { RELEASED_HANDLER } from './released-handler.js'
import { TeeHandler } from './tee.js'
import { applyNotModified } from '../rules/validation.js'
import { andThen } from '../stores/maybe-promise.js'
import { forget, saveRenewed } from '../keys/variants.js'

/** RFC 5861 §4: the origin errors a stale entry may stand in for. */
const SERVER_ERRORS = new Set([500, 502, 503, 504])

export interface RevalidationContext {
  /** The stored response being revalidated. */
  entry: ResponseEntry
  request: KeyedRequest
  key: string
  store: GuardedStore
  stats: StatsCounters
  shared: boolean
  maxEntrySize: number
  pendingBytes: PendingBytes
  rules: StorageRules
  filter: ResponseFilter | undefined
  cacheName: string | false
  /** Why the stored response could not be served as it was, for `Cache-Status`. */
  reason: 'stale' | 'request'
  /** Whether the origin's answer may be stored (a HEAD's answer never replaces a stored GET). */
  mayStore: boolean
  /** Whether the entry may stand in for an origin that fails (stale-if-error), judged when it fails. */
  mayServeStaleOnError: () => boolean
  /**
   * Whether the revalidation carries validators the cache added. Without them (an entry without validators,
   * or of a method asked for in full, such as POST) a request sent again would be the same request twice.
   */
  conditional: boolean
  /**
   * Sends the request again as the caller made it, without the cache's validators, to `handler`: what is
   * left to do when the origin's 304 names no stored response (RFC 9111 §4.3.4, issue #16).
   */
  sendUnconditional: (handler: Dispatcher.DispatchHandler) => void
  /** The controller of a caller that was started already (a coalesced request that waited). */
  startedController?: CallerController
  /** The flight this revalidation leads, settled once what it leaves in the store is final (see `TeeContext`). */
  flight?: FlightReport
  /** A caller's own revalidation: a full answer from the origin counts in `stats.misses` (a refresh behind answers nobody). */
  countsMiss?: boolean
}

/**
 * Handles the origin's answer to a revalidation (RFC 9111 §4.3.3, §4.3.4; RFC 5861 §4):
 * - a 304 updates the stored entry and renews its freshness, and the caller gets the stored body with the
 *   updated headers (never the 304 itself, which it did not ask for);
 * - a 304 whose validator names another response than the stored one validates nothing: once it has ended,
 *   the request goes again without validators, to this same handler, and its answer is handled as the
 *   revalidation's is (so stale-if-error holds for it too), except that a 304 to it passes through;
 * - a 500, 502, 503 or 504, or no response at all, lets the stale entry stand in when stale-if-error allows;
 * - anything else passes through to the caller as a miss would, replacing the entry or deleting it.
 * The caller holds one controller throughout, so its abort reaches the origin or the replay, whichever
 * is producing the body at the time.
 */
export class RevalidationHandler implements Dispatcher.DispatchHandler {
  readonly #context: RevalidationContext
  /** The caller's handler; RELEASED_HANDLER once its answer is handed over whole (see #release). */
  #caller: Dispatcher.DispatchHandler
  readonly #controller: CallerController
  /** The caller's way to the origin's answer: a new one for the request sent again; undefined once released. */
  #passThrough: TeeHandler | undefined
  /** Set once the request has been sent again without validators: it is never sent a third time. */
  #retried = false
  /** Whether the caller holds `#controller` already. */
  #started: boolean
  /** Set once the origin's final response has begun to pass through to the caller. */
  #passingThrough = false
  /**
   * What answers the caller: the origin's answer (to the revalidation, or to the request sent again); the
   * stored entry (the origin's further events are then ignored); or, once this 304 has ended, the request
   * sent again without validators.
   */
  #answer: 'origin' | 'store' | 'unconditional' = 'origin'
  /** When the revalidation was sent (RFC 9111 §4.2.3's request_time, for the age of a 304). */
  readonly #requestTime = Date.now()

  constructor(caller: Dispatcher.DispatchHandler, context: RevalidationContext) {
    this.#caller = caller
    this.#context = context
    this.#controller = context.startedController ?? new CallerController()
    this.#started = context.startedController !== undefined
    this.#passThrough = this.#teeToCaller()
  }

  /** Passes an answer of the origin through to the caller, storing it in place of the entry if it may be stored. */
  #teeToCaller(): TeeHandler {
    const context = this.#context
    return new TeeHandler(this.#caller, {
      reason: context.reason,
      cacheName: context.cacheName,
      controller: this.#controller,
      callerStarted: this.#started,
      ...(context.mayStore
        ? {
            storage: {
              request: context.request,
              key: context.key,
              store: context.store,
              shared: context.shared,
              maxEntrySize: context.maxEntrySize,
              pendingBytes: context.pendingBytes,
              rules: context.rules,
              filter: context.filter,
              replaces: true,
              ...(context.flight ? { flight: context.flight } : {}),
            },
          }
        : {}),
    })
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#passThrough?.onRequestStart(controller, context) // points the caller's controller at the origin
    this.#started = true
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, statusText?: string): void {
    // Even to a request without validators (the entry has none): RFC 9111 §4.3.4 selects a stored response
    // without validators for a 304 without any, and a caller must never get a 304 it did not ask for. A 304
    // to the request sent again without validators is the origin's own error: it passes through, as it would
    // without a cache.
    if (statusCode === 304 && !this.#retried) return this.#answerNotModified(controller, headers, statusText)
    if (SERVER_ERRORS.has(statusCode) && this.#mayStandIn()) {
      this.#context.flight?.settle()
      return this.#answerFromStore(this.#context.entry, { fwdStatus: statusCode, detail: 'stale-if-error' })
    }
    if (statusCode >= 200) {
      this.#passingThrough = true
      if (this.#context.countsMiss) this.#context.stats.misses++ // what was stored was not used: a miss, as Cache-Status says
    }
    this.#passThrough?.onResponseStart(controller, statusCode, headers, statusText)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#answer === 'origin') this.#passThrough?.onResponseData(controller, chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: HeaderRecord): void {
    // Sent once the 304 is over, so that it may go on the connection the 304 came on.
    if (this.#answer === 'unconditional') return this.#sendUnconditional()
    if (this.#answer === 'origin') this.#passThrough?.onResponseEnd(controller, trailers)
    this.#release()
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#answer === 'store') return this.#release()
    // The origin could not be reached or broke off before answering; an abort by the caller is not that.
    if (!this.#controller.aborted && this.#mayStandIn()) {
      this.#context.flight?.settle(error) // waiters meet the same failure, and the same stale entry stands in
      this.#answerFromStore(this.#context.entry, { detail: 'stale-if-error' })
    } else this.#passThrough?.onResponseError(controller, error)
    this.#release()
  }

  /**
   * The origin's response is over and the caller's answer handed on whole (passed through, or to the replay
   * of a stored response, which holds the caller until its end): this handler, which undici may hold a while
   * yet, lets go of the caller (RELEASED_HANDLER says why).
   */
  #release(): void {
    this.#caller = RELEASED_HANDLER
    this.#passThrough = undefined // a tee that has not had an end (a 304 answered from the store) still holds the caller
  }

  onBodySent(chunk: Buffer): void {
    this.#passThrough?.onBodySent(chunk)
  }

  onRequestSent(): void {
    this.#passThrough?.onRequestSent()
  }

  #mayStandIn(): boolean {
    // Once the caller has seen the start of the origin's response, nothing else may answer it.
    return !this.#passingThrough && this.#answer !== 'store' && this.#context.mayServeStaleOnError()
  }

  #answerNotModified(controller: Dispatcher.DispatchController, notModifiedHeaders: HeaderRecord, statusText?: string): void {
    const { entry, request, shared, store, key, rules, filter } = this.#context
    const settled = (): void => this.#context.flight?.settle()
    const policyRequest = policyRequestOf({ method: request.method, storedUrl: entry.url, headers: request.headers })
    const result = applyNotModified(entry, policyRequest, notModifiedHeaders, { shared, now: Date.now(), requestTime: this.#requestTime, rules })
    // RFC 9111 §4.3.4: a 304 that selects no stored response updates none, so it validates none either: the
    // stored response may not be served on its strength (issue #16). Coalesced requests wait on the next answer.
    // A revalidation without validators of the cache's would be sent again as it was (a POST twice, where no
    // cache sends it once): the origin's 304 to it is its own error, and passes through as it would uncached.
    if (!result.selected) {
      if (this.#context.conditional) this.#answer = 'unconditional'
      else this.#passThroughNotModified(controller, notModifiedHeaders, statusText)
      return
    }
    const stored = result.storable && filterAllows(filter, request, result.entry, store)
    void andThen(stored ? saveRenewed(store, key, request, entry, result.entry) : forget(store, key), settled)
    this.#answerFromStore(withCookiesSetBy(notModifiedHeaders, result.entry), { fwdStatus: 304, stored })
  }

  #passThroughNotModified(controller: Dispatcher.DispatchController, headers: HeaderRecord, statusText?: string): void {
    this.#passingThrough = true
    this.#passThrough?.onResponseStart(controller, 304, headers, statusText)
  }

  /**
   * Sends the request again without validators, to this handler: its answer reaches the caller (on the
   * controller it holds) as the answer to the revalidation would, stored in place of the entry if it may be,
   * and a server error or a failure to answer lets the stale entry stand in (stale-if-error).
   */
  #sendUnconditional(): void {
    this.#controller.switchTo(NO_SOURCE) // an abort from now on waits for the new request (switchTo passes it on)
    this.#retried = true
    this.#answer = 'origin'
    this.#passThrough = this.#teeToCaller()
    try {
      this.#context.sendUnconditional(this)
    } catch (error) {
      this.onResponseError(this.#controller, error instanceof Error ? error : new Error(String(error)))
    }
  }

  /** Answers the caller with a stored response, on the controller it already holds when it was started. */
  #answerFromStore(entry: ResponseEntry, outcome: { fwdStatus?: number; stored?: boolean; detail?: CacheStatusDetail }): void {
    this.#answer = 'store'
    if (outcome.fwdStatus === 304) this.#context.stats.revalidated++
    if (outcome.detail === 'stale-if-error') this.#context.stats.stale++
    const now = Date.now()
    const member: CacheStatusParameters = {
      fwd: this.#context.reason,
      ...outcome,
      ttlSeconds: ttlSeconds(entry, now),
      key: this.#context.key,
    }
    serveEntry(entry, this.#caller, {
      method: this.#context.request.method,
      cacheName: this.#context.cacheName,
      member,
      now,
      request: this.#context.request,
      ...(this.#started ? { controller: this.#controller } : {}),
    })
  }
}

/**
 * The renewed entry as the caller whose request reached the origin gets it: with the cookies the 304 set
 * for that caller, which a shared cache does not store (issue #16); a private one stored them already.
 */
function withCookiesSetBy(notModifiedHeaders: HeaderRecord, entry: ResponseEntry): ResponseEntry {
  const cookies: HeaderRecord = {}
  for (const name of COOKIE_SETTING_FIELDS) if (notModifiedHeaders[name] !== undefined) cookies[name] = notModifiedHeaders[name]!
  return Object.keys(cookies).length === 0 ? entry : { ...entry, headers: { ...entry.headers, ...cookies } }
}
