/**
 * Coalescing (option `coalesce`): concurrent requests that would each go to the origin for the same stored
 * response (the same key and variant, a miss or a stale entry) send one request. The first, the leader,
 * goes to the origin as usual; the others wait, and when what the leader's response leaves in the store is
 * final they look the store up again, each on its own: a hit then replays the stored response to each at
 * its own pace, and whatever did not get stored (not storable, too large, `Vary` that does not match,
 * an error) sends each waiter to the origin on its own. So a waiter only ever gets what it would have got
 * from the store, and nothing is shared but stored entries, bounded by `maxEntrySize`.
 *
 * Nor does a waiter wait longer than it would have without the cache (issue #16): a timeout that fails the
 * leader's request fails the waiters at once, rather than sending each to wait for it again on its own
 * (wait-limits.ts says which failures are shared).
 */
import type { Dispatcher } from 'undici'
import { CallerController } from './controller.js'
import type { Dispatch } from './exchange.js'
import { isSharedFailure, waitLimitsOf, type WaitLimits } from './wait-limits.js'

/** A request waiting on a leader; started already, so that its abort takes it out of the wait at once. */
export interface Waiter {
  controller: CallerController
  limits: WaitLimits
  /**
   * Runs the request again from the store lookup, once the leader's outcome is in the store; with `failure`,
   * the origin's answer to whatever it would send is that failure (see dispatchFailure).
   */
  retry(failure: Error | undefined): void
}

/**
 * What a waiter dispatches instead of going to the origin when it is handed the leader's failure: a dispatch
 * that fails with it at once. The waiter's request goes on through the cache as any other whose origin
 * failed: a stale entry that `stale-if-error` allows still stands in, and its caller gets `Cache-Status`.
 */
export function dispatchFailure(failure: Error): Dispatch {
  return (_options, handler) => {
    const controller = new CallerController()
    queueMicrotask(() => {
      handler.onRequestStart?.(controller, {})
      // A caller that aborted meanwhile gets its abort (switched onto this controller as it started).
      handler.onResponseError?.(controller, controller.reason ?? failure)
    })
    return true
  }
}

/** What a flight tells the relay of its leader's response (LeaderRelay) about the requests waiting on it. */
export interface FlightWatcher {
  /** A request has started to wait. */
  onWaiterJoined(): void
  /** Nobody waits any longer: the last waiter left, or the flight settled. */
  onWaitersGone(): void
}

/** The requests in flight, by coalescing identity (method, key, variant). */
export class Flights {
  readonly #flights = new Map<string, Flight>()
  /** The timeouts of the dispatcher that reaches the origin, where known (`CachingAgent`'s own `Agent`). */
  readonly #defaults: WaitLimits

  constructor(defaults: WaitLimits) {
    this.#defaults = defaults
  }

  /** The flight a request with this identity may wait on, if one is in the air. */
  get(id: string): Flight | undefined {
    return this.#flights.get(id)
  }

  /** Starts a flight for a leader sent with `options`; it is forgotten when it settles. */
  start(id: string, options: Dispatcher.DispatchOptions): Flight {
    const flight = new Flight({ leaderLimits: waitLimitsOf(options, this.#defaults), defaults: this.#defaults }, () => this.#flights.delete(id))
    this.#flights.set(id, flight)
    return flight
  }

  /** Flights in the air now. */
  get size(): number {
    return this.#flights.size
  }
}

export class Flight {
  /** Made when the first request waits: most flights have no waiters, and a Set per miss costs. */
  #waiters: Set<Waiter> | undefined
  readonly #onSettled: () => void
  #settled = false
  #watcher: FlightWatcher | undefined
  /** The leader's timeouts, and the dispatcher's, which a waiter's own options may override. */
  readonly #limits: { leaderLimits: WaitLimits; defaults: WaitLimits }

  constructor(limits: { leaderLimits: WaitLimits; defaults: WaitLimits }, onSettled: () => void) {
    this.#limits = limits
    this.#onSettled = onSettled
  }

  /** Whether anyone still waits on this flight (and it has not settled). */
  get hasWaiters(): boolean {
    return !this.#settled && this.#waiters !== undefined && this.#waiters.size > 0
  }

  /** From now on `watcher` is told as requests start to wait and when nobody waits any longer. */
  watch(watcher: FlightWatcher): void {
    this.#watcher = watcher
  }

  /**
   * Starts `handler` (a request sent with `options`) on a controller of its own and makes it wait. An abort
   * while waiting ends it with onResponseError and leaves the flight and the other waiters alone.
   */
  wait(
    handler: Dispatcher.DispatchHandler,
    options: Dispatcher.DispatchOptions,
    retry: (controller: CallerController, failure: Error | undefined) => void,
  ): void {
    const controller = new CallerController()
    const limits = waitLimitsOf(options, this.#limits.defaults)
    const waiter: Waiter = { controller, limits, retry: (failure) => retry(controller, failure) }
    controller.switchTo({
      pause() {},
      resume() {},
      abort: (reason) => {
        if (!this.#waiters?.delete(waiter)) return
        queueMicrotask(() => handler.onResponseError?.(controller, reason))
        if (this.#waiters.size === 0) this.#watcher?.onWaitersGone()
      },
    })
    this.#waiters ??= new Set()
    this.#waiters.add(waiter)
    handler.onRequestStart?.(controller, {})
    this.#watcher?.onWaiterJoined()
  }

  /**
   * The leader's outcome is in the store (or known not to be): every waiter looks again. Once. `failure` is
   * why the leader's request failed, if it did: the waiters it is shared with (isSharedFailure) get it in
   * place of a request of their own.
   */
  settle(failure?: Error): void {
    if (this.#settled) return
    this.#settled = true
    this.#onSettled()
    const waiters = this.#waiters
    this.#waiters = undefined
    for (const waiter of waiters ?? []) {
      const shared = failure !== undefined && isSharedFailure(failure, { waiter: waiter.limits, leader: this.#limits.leaderLimits })
      waiter.retry(shared ? failure : undefined)
    }
    this.#watcher?.onWaitersGone()
  }
}
