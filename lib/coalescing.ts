/**
 * Coalescing (option `coalesce`): concurrent requests that would each go to the origin for the same stored
 * response (the same key and variant, a miss or a stale entry) send one request. The first, the leader,
 * goes to the origin as usual; the others wait, and when what the leader's response leaves in the store is
 * final they look the store up again, each on its own: a hit then replays the stored response to each at
 * its own pace, and whatever did not get stored (not storable, too large, `Vary` that does not match,
 * an error) sends each waiter to the origin on its own. So a waiter only ever gets what it would have got
 * from the store, and nothing is shared but stored entries, bounded by `maxEntrySize`.
 */
import type { Dispatcher } from 'undici'
import { CallerController } from './controller.js'

/** A request waiting on a leader; started already, so that its abort takes it out of the wait at once. */
export interface Waiter {
  controller: CallerController
  /** Runs the request again from the store lookup, once the leader's outcome is in the store. */
  retry(): void
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

  /** The flight a request with this identity may wait on, if one is in the air. */
  get(id: string): Flight | undefined {
    return this.#flights.get(id)
  }

  /** Starts a flight; it is forgotten when it settles. */
  start(id: string): Flight {
    const flight = new Flight(() => this.#flights.delete(id))
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

  constructor(onSettled: () => void) {
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
   * Starts `handler` on a controller of its own and makes it wait. An abort while waiting ends it with
   * onResponseError and leaves the flight and the other waiters alone.
   */
  wait(handler: Dispatcher.DispatchHandler, retry: (controller: CallerController) => void): void {
    const controller = new CallerController()
    const waiter: Waiter = { controller, retry: () => retry(controller) }
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

  /** The leader's outcome is in the store (or known not to be): every waiter looks again. Once. */
  settle(): void {
    if (this.#settled) return
    this.#settled = true
    this.#onSettled()
    const waiters = this.#waiters
    this.#waiters = undefined
    for (const waiter of waiters ?? []) waiter.retry()
    this.#watcher?.onWaitersGone()
  }
}
