/**
 * The leader of a coalesced flight (coalescing.ts): its response goes on into the store for the requests
 * waiting on it, whatever the leader itself does with it.
 */
import type { Dispatcher } from 'undici'
import type { Flight, FlightWatcher } from './coalescing.js'
import { CallerController, type ResponseSource } from './controller.js'
import type { HeaderRecord } from './headers.js'

type Queued = { kind: 'data'; chunk: Buffer } | { kind: 'end'; trailers: HeaderRecord } | { kind: 'error'; error: Error }

/**
 * Stands between the leader's response and the leader's own handler, so that the leader cannot hold the
 * waiters up or cut them off while they wait: its abort detaches it (it gets its error, the response goes
 * on into the store), and its pause queues the body for it instead of pausing the origin (a pause from
 * before the first waiter came is lifted then). Once nobody waits, pause and abort act on the origin again,
 * and a response the leader has left is aborted: nobody would read the rest, and finishing it only to store
 * it would download, perhaps without end, what nobody asked for. So it is not stored, as a response is not
 * when a request that nobody waits on is aborted. The queue never outgrows the body being stored, which the
 * store's `maxEntrySize` bounds: past it the flight settles and waiting ends.
 */
export class LeaderRelay implements Dispatcher.DispatchHandler, ResponseSource, FlightWatcher {
  readonly #leader: Dispatcher.DispatchHandler
  readonly #flight: Flight
  readonly #controller = new CallerController()
  #upstream: Dispatcher.DispatchController | undefined
  readonly #queue: Queued[] = []
  #detached = false
  /** Why the leader left: the request to the origin is aborted with it once nobody waits. */
  #leaderAbortReason: Error | undefined
  #pausedUpstream = false
  /** The origin's response has ended or failed: nothing more comes, nothing is left to pause or abort. */
  #upstreamDone = false
  /** The leader has had its end or an error (or is being handed its abort): it has nothing left to abort. */
  #leaderDone = false

  constructor(leader: Dispatcher.DispatchHandler, flight: Flight) {
    this.#leader = leader
    this.#flight = flight
    flight.watch(this)
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#upstream = controller
    this.#controller.switchTo(this) // the leader's pause, resume and abort come here (ResponseSource below)
    this.#leader.onRequestStart?.(this.#controller, context)
  }

  /** The leader pauses: the origin is held back only when nobody waits (otherwise the body queues). */
  pause(): void {
    if (!this.#flight.hasWaiters) this.#pauseUpstream()
  }

  resume(): void {
    this.#drain()
  }

  /**
   * The leader aborts: it leaves while others wait, or when its response is all here, queued (the request
   * to the origin is over: aborting it would not reach the leader); otherwise the request to the origin ends.
   */
  abort(reason: Error): void {
    // It has had its end (or an error) already, though waiters may still wait on a slow store write.
    if (this.#leaderDone) return
    if (this.#flight.hasWaiters || this.#upstreamDone) this.#detach(reason)
    else this.#upstream?.abort(reason)
  }

  get rawTrailers(): Dispatcher.DispatchController['rawTrailers'] {
    return this.#upstream?.rawTrailers
  }

  /** A request waits now: an origin the leader's pause held back goes on, and the body queues for the leader. */
  onWaiterJoined(): void {
    // Deferred: the request may be dispatched from inside another response's callback, where undici must not
    // resume a response (it asserts so).
    if (!this.#pausedUpstream) return
    queueMicrotask(() => {
      if (this.#flight.hasWaiters) this.#resumeUpstream()
    })
  }

  /** Nobody waits any longer: a response the leader has left is read by nobody, so its request is aborted. */
  onWaitersGone(): void {
    // Deferred: the flight settles as the response ends, just before the end reaches this relay.
    if (this.#detached) queueMicrotask(() => this.#endAbandoned())
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, statusText?: string): void {
    if (statusCode >= 200) this.#flight.headersArrived() // 1xx responses are interim
    if (this.#detached) return
    this.#controller.setHeaders(headers, Array.isArray(controller.rawHeaders) ? (controller.rawHeaders as Buffer[]) : undefined)
    this.#leader.onResponseStart?.(this.#controller, statusCode, headers, statusText)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#flight.bodyArrived()
    // Most chunks go straight on to a leader that reads them, as #deliver would hand them: no queue item made.
    if (!this.#detached && this.#queue.length === 0 && !this.#controller.paused) return void this.#leader.onResponseData?.(this.#controller, chunk)
    this.#deliver({ kind: 'data', chunk })
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: HeaderRecord): void {
    this.#upstreamDone = true
    this.#flight.responseEnded()
    this.#deliver({ kind: 'end', trailers })
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#upstreamDone = true
    this.#flight.responseEnded()
    this.#deliver({ kind: 'error', error })
  }

  onBodySent(chunk: Buffer): void {
    this.#leader.onBodySent?.(chunk)
  }

  onRequestSent(): void {
    this.#leader.onRequestSent?.()
  }

  #deliver(item: Queued): void {
    if (this.#detached) return
    // The leader aborted (a paused one too: its abort ended the request to the origin): its error is handed
    // over at once, as undici hands an error whatever a pause, and what was queued is read by nobody.
    if (item.kind === 'error' && this.#controller.aborted) {
      this.#queue.length = 0
      return this.#hand(item)
    }
    if (this.#queue.length > 0 || this.#controller.paused) {
      this.#queue.push(item)
      // Nobody waits any longer: hold the origin back until the leader reads again.
      if (!this.#flight.hasWaiters) this.#pauseUpstream()
      return
    }
    this.#hand(item)
  }

  /** Hands the queue to the leader while it reads, then lets the origin go on. */
  #drain(): void {
    while (this.#queue.length > 0 && !this.#controller.paused && !this.#detached) this.#hand(this.#queue.shift()!)
    if (this.#queue.length === 0 && !this.#controller.paused) this.#resumeUpstream()
  }

  #hand(item: Queued): void {
    if (item.kind === 'data') return void this.#leader.onResponseData?.(this.#controller, item.chunk)
    this.#leaderDone = true
    if (item.kind === 'end') this.#leader.onResponseEnd?.(this.#controller, item.trailers)
    else this.#leader.onResponseError?.(this.#controller, item.error)
  }

  #pauseUpstream(): void {
    // A response that has ended is not paused, so never resumed: undici passes a resume to its connection,
    // which may be reading another response by then.
    if (this.#pausedUpstream || this.#upstreamDone) return
    this.#pausedUpstream = true
    this.#upstream?.pause()
  }

  #resumeUpstream(): void {
    if (!this.#pausedUpstream) return
    this.#pausedUpstream = false
    this.#upstream?.resume()
  }

  /** The leader leaves: it gets its abort as an error; the response goes on for the waiters' sake. */
  #detach(reason: Error): void {
    this.#detached = true
    this.#leaderDone = true
    this.#leaderAbortReason = reason
    this.#queue.length = 0
    this.#resumeUpstream()
    queueMicrotask(() => this.#leader.onResponseError?.(this.#controller, reason))
  }

  /** The leader has left and nobody waits: the rest of the response would be read by nobody. */
  #endAbandoned(): void {
    if (!this.#upstreamDone && !this.#flight.hasWaiters) this.#upstream?.abort(this.#leaderAbortReason!)
  }
}
