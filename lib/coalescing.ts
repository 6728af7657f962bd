/**
 * Coalescing (option `coalesce`): concurrent requests that would each go to the origin for the same stored
 * response (the same key and variant, a miss or a stale entry) send one request. The first, the leader,
 * goes to the origin as usual; the others wait, and when what the leader's response leaves in the store is
 * final they look the store up again, each on its own: a hit then replays the stored response to each at
 * its own pace, and whatever did not get stored (not storable, too large, `Vary` that does not match,
 * an error) sends each waiter to the origin on its own. So a waiter only ever gets what it would have got
 * from the store, and nothing is shared but stored entries, bounded by `maxEntrySize`.
 *
 * Nor does a waiter wait longer than it would have without the cache (issue #16): its own timeouts bound its
 * wait (WaitTimer), and a timeout that fails the leader's request fails the waiters at once, rather than
 * sending each to wait for it again on its own (wait-limits.ts says which failures are shared).
 *
 * A miss whose identity's last response could not be stored starts no flight (Varnish's hit-for-pass): a
 * request waiting on it could not be served from it, only sent on after it (`Flights.passes`).
 */
import { performance } from 'node:perf_hooks'
import type { Dispatcher } from 'undici'
import { CallerController } from './controller.js'
import type { Dispatch } from './exchange.js'
import { comparableLimitsTag, isSharedFailure, WaitTimer, waitLimitsOf, type WaitLimits, type WaitPhase } from './wait-limits.js'

/** A request waiting on a leader; started already, so that its abort takes it out of the wait at once. */
interface Waiter {
  controller: CallerController
  limits: WaitLimits
  timer: WaitTimer
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

/**
 * The requests in flight, by coalescing identity (method, key, variant, and which limits compare). One per
 * dispatcher the cache sends to: its defaults are the waiters' (an interceptor composed on two dispatchers
 * has two, whose timeouts, connect timeout included, may differ).
 */
export class Flights {
  readonly #flights = new Map<string, Flight>()
  /** Identities whose last response was not storable (see `passes`). */
  readonly #passing = new Set<string>()
  /** The timeouts of the dispatcher that reaches the origin, where known (`CachingAgent`'s own `Agent`). */
  readonly #defaults: WaitLimits

  constructor(defaults: WaitLimits) {
    this.#defaults = defaults
  }

  /**
   * The identity of a request's flight: `id` (method, key, variant) and which limits it can compare with
   * its own (comparableLimitsTag), the tag first, up to a space it never holds, so that no identity can end
   * up spelling another. Worked out once per request, for `get` and then `start`.
   */
  identityOf(id: string, options: Dispatcher.DispatchOptions): string {
    return `${comparableLimitsTag(options, this.#defaults)} ${id}`
  }

  /** The flight a request with this identity may wait on, if one is in the air. */
  get(identity: string): Flight | undefined {
    return this.#flights.get(identity)
  }

  /**
   * Whether the last response to a miss with this identity could not be stored (Varnish's hit-for-pass):
   * then the next miss goes to the origin without a flight, for nobody could be served from its answer and
   * a request waiting on it would only be sent after it, one round trip late (issue #17: at 64 in flight on
   * one no-store URL nearly every request waited so).
   */
  passes(identity: string): boolean {
    return this.#passing.has(identity)
  }

  /** What a miss's response head said: a storable one lets the identity's misses wait on each other again. */
  noteStorable(identity: string, storable: boolean): void {
    if (storable) return void this.#passing.delete(identity)
    if (this.#passing.size >= MAX_PASSING) this.#passing.clear() // a working set of such URLs is soon noted again
    this.#passing.add(identity)
  }

  /** Starts a flight for a leader sent with `options`; it is forgotten when it settles. */
  start(identity: string, options: Dispatcher.DispatchOptions): Flight {
    const flight = new Flight({ identity, flights: this.#flights, leaderOptions: options, defaults: this.#defaults })
    this.#flights.set(identity, flight)
    return flight
  }
}

/** How many identities `Flights` notes as not storable at most, as KnownUrls bounds what it remembers. */
const MAX_PASSING = 1000

/** Where a flight is listed, and what its leader's limits are read from (when a waiter needs them). */
interface FlightPlace {
  identity: string
  flights: Map<string, Flight>
  leaderOptions: Dispatcher.DispatchOptions
  /** The dispatcher's timeouts, which a request's own options may override. */
  defaults: WaitLimits
}

export class Flight {
  /** Made when the first request waits: most flights have no waiters, and a Set per miss costs. */
  #waiters: Set<Waiter> | undefined
  readonly #place: FlightPlace
  #settled = false
  #watcher: FlightWatcher | undefined
  /** How far the leader's response has come: what the waiters' clocks measure. */
  #phase: WaitPhase = 'headers'
  /** When the leader's response last received body bytes (`performance.now()`). */
  #progressAt = 0
  /** Made for the first waiter, as the Set is: a closure per miss costs too. */
  #progressAtOf: (() => number) | undefined

  constructor(place: FlightPlace) {
    this.#place = place
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
   * while waiting ends it with onResponseError, and its own timeout ends the wait (see WaitTimer); either
   * leaves the flight and the other waiters alone.
   */
  wait(
    handler: Dispatcher.DispatchHandler,
    options: Dispatcher.DispatchOptions,
    retry: (controller: CallerController, failure: Error | undefined) => void,
  ): void {
    const controller = new CallerController()
    const limits = waitLimitsOf(options, this.#place.defaults)
    // Past its own timeout the waiter goes on as if its own request had timed out (a stale entry may stand in).
    const timer = new WaitTimer(limits, (error) => {
      if (this.#leave(waiter)) waiter.retry(error)
    })
    const waiter: Waiter = { controller, limits, timer, retry: (failure) => retry(controller, failure) }
    controller.switchTo({
      pause() {},
      resume() {},
      abort: (reason) => {
        if (this.#leave(waiter)) queueMicrotask(() => handler.onResponseError?.(controller, reason))
      },
    })
    if (this.#waiters === undefined) {
      this.#waiters = new Set()
      // The body's progress is noted only once anyone waits: the first waiter's clock starts as it joins.
      this.#progressAt = performance.now()
    }
    this.#waiters.add(waiter)
    handler.onRequestStart?.(controller, {})
    this.#progressAtOf ??= () => this.#progressAt
    timer.arm(this.#phase, this.#progressAtOf)
    this.#watcher?.onWaiterJoined()
  }

  /** Takes a waiter out of the wait; false if it was not waiting any longer. */
  #leave(waiter: Waiter): boolean {
    if (!this.#waiters?.delete(waiter)) return false
    waiter.timer.stop()
    if (this.#waiters.size === 0) this.#watcher?.onWaitersGone()
    return true
  }

  /** The leader's response head has come: from now on the waiters' `bodyTimeout` measures its body. */
  headersArrived(): void {
    this.#phase = 'body'
    if (this.#waiters === undefined) return // most flights: nobody waits
    this.#progressAt = performance.now()
    for (const waiter of this.#waiters) waiter.timer.arm('body', this.#progressAtOf!)
  }

  /** Body bytes came: the waiters' `bodyTimeout` counts from here (noted only while anyone waits). */
  bodyArrived(): void {
    if (this.#waiters !== undefined) this.#progressAt = performance.now()
  }

  /** The leader's response is whole or failed (its store write may take a while yet): the waiters' clocks stop. */
  responseEnded(): void {
    this.#phase = 'done'
    for (const waiter of this.#waiters ?? []) waiter.timer.stop()
  }

  /**
   * The leader's outcome is in the store (or known not to be): every waiter looks again. Once. `failure` is
   * why the leader's request failed, if it did: the waiters it is shared with (isSharedFailure) get it in
   * place of a request of their own.
   */
  settle(failure?: Error): void {
    if (this.#settled) return
    this.#settled = true
    const { flights, identity, leaderOptions, defaults } = this.#place
    flights.delete(identity)
    const waiters = this.#waiters
    this.#waiters = undefined
    const leader = waiters !== undefined && failure !== undefined ? waitLimitsOf(leaderOptions, defaults) : undefined
    for (const waiter of waiters ?? []) {
      waiter.timer.stop()
      const shared = leader !== undefined && isSharedFailure(failure!, { waiter: waiter.limits, leader })
      waiter.retry(shared ? failure : undefined)
    }
    this.#watcher?.onWaitersGone()
    // A settled flight tells nobody anything more, and holds nothing of its leader's response: something dead
    // in the old generation may still point at the flight (issue #17: likely a hash table the Flights map
    // outgrew), and through the relay it kept the leader's whole handler chain alive through every scavenge,
    // so that a 64-in-flight miss run spent 4x the time collecting.
    this.#watcher = undefined
  }
}
