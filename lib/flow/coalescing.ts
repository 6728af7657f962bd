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
 * request waiting on it could not be served from it, only sent on after it (`FlightTable.passes`).
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
 * What a miss others could wait on tells the flights of its response, and a revalidation that leads a flight
 * when its outcome is in the store: one object a request, the flight itself where there is one, rather than
 * a closure for each (issue #17).
 */
export interface FlightReport {
  /** At the final response's head: whether it is being copied for the store (see `FlightTable.passes`). */
  storable(storable: boolean): void
  /** What the response leaves in the store is final; `failure` is why its request failed, if it did. */
  settle(failure?: Error): void
}

/**
 * The requests in flight, by coalescing identity (method, key, variant, and which limits compare). One per
 * dispatcher the cache sends to: its defaults are the waiters' (an interceptor composed on two dispatchers
 * has two, whose timeouts, connect timeout included, may differ).
 *
 * Nearly every miss is a GET with no `Vary` selection whose limits compare with the dispatcher's: its key
 * alone names its flight, a string the store lookup hashed already, so that a miss makes and hashes no
 * identity string of its own (issue #17: a fresh string flattened and hashed for every lookup in the table).
 * Every other request is listed in a table of its own, by the key with what sets it apart: a key of the
 * user's `key` function may be any string, and must never spell another request's identity.
 */
export class Flights {
  readonly #byKey: FlightTable
  readonly #byIdentity: FlightTable

  /** `defaults`: the timeouts of the dispatcher that reaches the origin, where known (`CachingAgent`'s own `Agent`). */
  constructor(defaults: WaitLimits) {
    this.#byKey = new FlightTable(defaults)
    this.#byIdentity = new FlightTable(defaults)
  }

  /** Which limits a request sent with `options` can compare with its own (comparableLimitsTag): '' for the dispatcher's. */
  limitsTag(options: Dispatcher.DispatchOptions): string {
    return comparableLimitsTag(options, this.#byKey.defaults)
  }

  /** The table that lists the flight of a request with this method, `Vary` selection and limits tag. */
  tableFor(method: string, variant: Record<string, string | null> | undefined, limitsTag: string): FlightTable {
    return method === 'GET' && variant === undefined && limitsTag === '' ? this.#byKey : this.#byIdentity
  }

  /**
   * The identity of a request's flight in `table`: its key in the table by key; otherwise its limits tag, method,
   * key and variant, the tag first, up to a space it never holds, so that no identity can end up spelling
   * another. (Arguments, not an object: none made a miss.)
   */
  identityIn(table: FlightTable, limitsTag: string, method: string, key: string, variant: Record<string, string | null> | undefined): string {
    if (table === this.#byKey) return key
    const selection = variant === undefined ? '' : ` ${JSON.stringify(variant)}`
    return `${limitsTag} ${method} ${key}${selection}`
  }
}

/** Flights listed one way (see `Flights`), and the identities among them whose last response was not storable. */
export class FlightTable {
  readonly #flights = new Map<string, Flight>()
  /** Identities whose last response was not storable (see `passes`). */
  readonly #passing = new Set<string>()
  readonly #defaults: WaitLimits

  constructor(defaults: WaitLimits) {
    this.#defaults = defaults
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

  /**
   * Starts a flight for a leader sent with `options`; it is forgotten when it settles. A miss's flight notes
   * whether its response was storable (`passes`); a revalidation's does not: a stale entry's always coalesce.
   */
  start(identity: string, options: Dispatcher.DispatchOptions, isMiss: boolean): Flight {
    const flight = new Flight(this, identity, options, isMiss)
    this.#flights.set(identity, flight)
    return flight
  }

  /** The dispatcher's timeouts, which a request's own options may override. */
  get defaults(): WaitLimits {
    return this.#defaults
  }

  /** Called by a flight as it settles. */
  forget(identity: string): void {
    this.#flights.delete(identity)
  }
}

/** How many identities a table notes as not storable at most, as KnownUrls bounds what it remembers. */
const MAX_PASSING = 1000

/** What a miss whose identity passes (no flight) reports: only whether its response was storable. */
export class PassingMiss implements FlightReport {
  readonly #table: FlightTable
  readonly #identity: string

  constructor(table: FlightTable, identity: string) {
    this.#table = table
    this.#identity = identity
  }

  storable(storable: boolean): void {
    this.#table.noteStorable(this.#identity, storable)
  }

  settle(): void {}
}

export class Flight implements FlightReport {
  /** Made when the first request waits: most flights have no waiters, and a Set per miss costs. */
  #waiters: Set<Waiter> | undefined
  /** Where the flight is listed, and under what identity. */
  readonly #table: FlightTable
  readonly #identity: string
  /** The leader's options, which its limits are read from when a waiter needs them. */
  readonly #leaderOptions: Dispatcher.DispatchOptions
  readonly #isMiss: boolean
  #settled = false
  #watcher: FlightWatcher | undefined
  /** How far the leader's response has come: what the waiters' clocks measure. */
  #phase: WaitPhase = 'headers'
  /** When the leader's response last received body bytes (`performance.now()`). */
  #progressAt = 0
  /** Made for the first waiter, as the Set is: a closure per miss costs too. */
  #progressAtOf: (() => number) | undefined

  constructor(table: FlightTable, identity: string, leaderOptions: Dispatcher.DispatchOptions, isMiss: boolean) {
    this.#table = table
    this.#identity = identity
    this.#leaderOptions = leaderOptions
    this.#isMiss = isMiss
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
    const limits = waitLimitsOf(options, this.#table.defaults)
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

  /** The leader's response head says whether it may be stored: a miss notes it for its identity (`passes`). */
  storable(storable: boolean): void {
    if (this.#isMiss) this.#table.noteStorable(this.#identity, storable)
  }

  /**
   * The leader's outcome is in the store (or known not to be): every waiter looks again. Once. `failure` is
   * why the leader's request failed, if it did: the waiters it is shared with (isSharedFailure) get it in
   * place of a request of their own.
   */
  settle(failure?: Error): void {
    if (this.#settled) return
    this.#settled = true
    this.#table.forget(this.#identity)
    const waiters = this.#waiters
    this.#waiters = undefined
    const leader = waiters !== undefined && failure !== undefined ? waitLimitsOf(this.#leaderOptions, this.#table.defaults) : undefined
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
