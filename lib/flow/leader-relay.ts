/**
 * The leader of a coalesced flight (coalescing.ts): its response goes on into the store for the requests
 * waiting on it, whatever the leader itself does with it.
 */
import type { Dispatcher } from 'undici'
import type { Flight, FlightWatcher } from './coalescing.js'
import { toRawHeaders, type HeaderRecord } from '../rules/headers.js'
import { RELEASED_HANDLER } from './released-handler.js'

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
 *
 * The relay is also the controller its leader is given: every miss that others could wait on has one, and
 * a controller object of its own per miss cost (issue #17).
 */
export class LeaderRelay implements Dispatcher.DispatchHandler, Dispatcher.DispatchController, FlightWatcher {
  /** The leader's handler; RELEASED_HANDLER once it has had its end or error. */
  #leader: Dispatcher.DispatchHandler
  readonly #flight: Flight
  #upstream: Dispatcher.DispatchController | undefined
  /** Made when the first item queues: most leaders read as fast as their response comes. */
  #queue: Queued[] | undefined
  /** The leader's own pause, abort and its reason, as its controller shows them. */
  #paused = false
  #aborted = false
  #reason: Error | null = null
  /** The response head the leader was shown, and its raw form (made when asked for, if the origin's is unknown). */
  #headers: HeaderRecord | undefined
  #rawHeaders: Buffer[] | undefined
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
    this.#leader.onRequestStart?.(this, context) // the leader's pause, resume and abort come here (below)
  }

  get paused(): boolean {
    return this.#paused
  }

  get aborted(): boolean {
    return this.#aborted
  }

  get reason(): Error | null {
    return this.#reason
  }

  get rawHeaders(): Buffer[] {
    this.#rawHeaders ??= toRawHeaders(this.#headers ?? {})
    return this.#rawHeaders
  }

  /** The leader pauses: the origin is held back only when nobody waits (otherwise the body queues). */
  pause(): void {
    this.#paused = true
    if (!this.#flight.hasWaiters) this.#pauseUpstream()
  }

  resume(): void {
    this.#paused = false
    this.#drain()
  }

  /**
   * The leader aborts: it leaves while others wait, or when its response is all here, queued (the request
   * to the origin is over: aborting it would not reach the leader); otherwise the request to the origin ends.
   */
  abort(reason: Error): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
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
    this.#headers = headers
    this.#rawHeaders = Array.isArray(controller.rawHeaders) ? (controller.rawHeaders as Buffer[]) : undefined
    this.#leader.onResponseStart?.(this, statusCode, headers, statusText)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#flight.bodyArrived()
    // Most chunks go straight on to a leader that reads them, as #deliver would hand them: no queue item made.
    if (!this.#detached && !this.#hasQueued() && !this.#paused) return void this.#leader.onResponseData?.(this, chunk)
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
    if (item.kind === 'error' && this.#aborted) {
      this.#queue = undefined
      return this.#hand(item)
    }
    if (this.#hasQueued() || this.#paused) {
      ;(this.#queue ??= []).push(item)
      // Nobody waits any longer: hold the origin back until the leader reads again.
      if (!this.#flight.hasWaiters) this.#pauseUpstream()
      return
    }
    this.#hand(item)
  }

  /** Hands the queue to the leader while it reads, then lets the origin go on. */
  #drain(): void {
    while (this.#hasQueued() && !this.#paused && !this.#detached) this.#hand(this.#queue!.shift()!)
    if (!this.#hasQueued() && !this.#paused) this.#resumeUpstream()
  }

  #hasQueued(): boolean {
    return this.#queue !== undefined && this.#queue.length > 0
  }

  #hand(item: Queued): void {
    if (item.kind === 'data') return void this.#leader.onResponseData?.(this, item.chunk)
    this.#leaderDone = true
    if (item.kind === 'end') this.#leader.onResponseEnd?.(this, item.trailers)
    else this.#leader.onResponseError?.(this, item.error)
    this.#release()
  }

  /**
   * The leader has had its response: this relay, which undici may hold a while yet, lets go of it and of the
   * response's head (RELEASED_HANDLER says why), and of undici's controller once the origin's response is over.
   */
  #release(): void {
    this.#leader = RELEASED_HANDLER
    this.#headers = undefined
    this.#rawHeaders = undefined
    if (this.#upstreamDone) this.#upstream = undefined
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
    this.#queue = undefined
    this.#resumeUpstream()
    queueMicrotask(() => {
      this.#leader.onResponseError?.(this, reason)
      this.#release()
    })
  }

  /** The leader has left and nobody waits: the rest of the response would be read by nobody. */
  #endAbandoned(): void {
    if (!this.#upstreamDone && !this.#flight.hasWaiters) this.#upstream?.abort(this.#leaderAbortReason!)
  }
}
