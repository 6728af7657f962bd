import type { Dispatcher } from 'undici'
import { toRawHeaders, type HeaderRecord } from '../rules/headers.js'

/** What a caller's pause, resume and abort act on: the origin's response, or a replay from the store. */
export interface ResponseSource {
  pause(): void
  resume(): void
  abort(reason: Error): void
  readonly rawTrailers?: Dispatcher.DispatchController['rawTrailers']
}

/** Before a response has a source (or between two): pausing and resuming wait for one; an abort is remembered. */
export const NO_SOURCE: ResponseSource = { pause() {}, resume() {}, abort() {} }

/** The headers of a controller that has been shown none: one record for all, never written to. */
const NO_HEADERS: HeaderRecord = Object.freeze({}) as HeaderRecord

/**
 * The controller a caller's handler is given. Its source can change during one response (a revalidation
 * that the origin answers 304 starts as a request to the origin and ends as a replay from the store), so
 * the caller keeps one controller throughout and its abort always reaches whatever is producing the body.
 *
 * undici's request() and fetch() read the response's headers from `rawHeaders`, so whenever the cache hands
 * a handler headers of its own making, the controller shows those headers in raw form too.
 */
export class CallerController implements Dispatcher.DispatchController {
  #source: ResponseSource
  #aborted = false
  #paused = false
  #reason: Error | null = null
  #headers: HeaderRecord = NO_HEADERS
  #rawHeaders: Buffer[] | undefined

  constructor(source: ResponseSource = NO_SOURCE) {
    this.#source = source
  }

  /** From now on pause, resume and abort act on `source`; an abort that came first reaches it at once. */
  switchTo(source: ResponseSource): void {
    this.#source = source
    if (this.#aborted) source.abort(this.#reason!)
  }

  get aborted(): boolean {
    return this.#aborted
  }

  get paused(): boolean {
    return this.#paused
  }

  get reason(): Error | null {
    return this.#reason
  }

  abort(reason: Error): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.#source.abort(reason)
  }

  pause(): void {
    this.#paused = true
    this.#source.pause()
  }

  resume(): void {
    this.#paused = false
    this.#source.resume()
  }

  /** `rawHeaders`, when the caller has them already, must say the same as `headers`. */
  setHeaders(headers: HeaderRecord, rawHeaders?: Buffer[]): void {
    this.#headers = headers
    this.#rawHeaders = rawHeaders
  }

  get rawHeaders(): Buffer[] {
    this.#rawHeaders ??= toRawHeaders(this.#headers)
    return this.#rawHeaders
  }

  get rawTrailers(): Buffer[] {
    const trailers = this.#source.rawTrailers
    return Array.isArray(trailers) ? trailers.map((item) => Buffer.from(item)) : []
  }
}

/**
 * A caller held while the cache works asynchronously before it can serve or send the request (reading a
 * body for the key, waiting for a store). It is started at once, so that its abort (an `AbortSignal`,
 * a timeout) ends the request then, with the abort's reason, as undici ends a request it has not sent,
 * rather than once the cache is done; and the cache stops reading the body (`signal`) and sends nothing.
 *
 * The request then goes on with `handler`: this, for a caller started here, which hands the caller's one
 * controller over to whatever produces the response instead of starting the caller again; or the caller's
 * own, for one started before (a coalesced request's retry), whose controller the cache carries on.
 */
export class HeldCaller implements ResponseSource, Dispatcher.DispatchHandler {
  readonly #caller: Dispatcher.DispatchHandler
  readonly #controller: CallerController
  readonly #startedHere: boolean
  /** Made when asked for (reading a body): most held requests only wait for a store. */
  #stop: AbortController | undefined
  #goneOn = false

  constructor(caller: Dispatcher.DispatchHandler, startedController: CallerController | undefined) {
    this.#caller = caller
    this.#controller = startedController ?? new CallerController()
    this.#startedHere = startedController === undefined
    this.#controller.switchTo(this)
    if (this.#startedHere) caller.onRequestStart?.(this.#controller, {})
  }

  /** Aborted with the caller: what the cache does for the request meanwhile stops. */
  get signal(): AbortSignal {
    this.#stop ??= new AbortController()
    if (this.#controller.aborted) this.#stop.abort(this.#controller.reason)
    return this.#stop.signal
  }

  /** The handler the request goes on with. */
  get handler(): Dispatcher.DispatchHandler {
    return this.#startedHere ? this : this.#caller
  }

  /**
   * Whether the request may go on: not once the caller has aborted (it has its error; nothing is to be
   * sent). From here on the caller's controller keeps an abort for whatever takes the response over.
   */
  proceed(): boolean {
    if (this.#controller.aborted) return false
    this.#goneOn = true
    return true
  }

  pause(): void {}

  resume(): void {}

  abort(reason: Error): void {
    if (this.#goneOn) return
    this.#stop?.abort(reason)
    queueMicrotask(() => this.#caller.onResponseError?.(this.#controller, reason))
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller.switchTo(controller) // the caller's pause, resume and abort now reach the response
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, statusText?: string): void {
    this.#controller.setHeaders(headers, Array.isArray(controller.rawHeaders) ? (controller.rawHeaders as Buffer[]) : undefined)
    this.#caller.onResponseStart?.(this.#controller, statusCode, headers, statusText)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#caller.onResponseData?.(this.#controller, chunk)
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: HeaderRecord): void {
    this.#caller.onResponseEnd?.(this.#controller, trailers)
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#caller.onResponseError?.(this.#controller, error)
  }

  onBodySent(chunk: Buffer): void {
    this.#caller.onBodySent?.(chunk)
  }

  onRequestSent(): void {
    this.#caller.onRequestSent?.()
  }
}
