import type { Dispatcher } from 'undici'
import { toRawHeaders, type HeaderRecord } from './headers.js'

/** What a caller's pause, resume and abort act on: the origin's response, or a replay from the store. */
export interface ResponseSource {
  pause(): void
  resume(): void
  abort(reason: Error): void
  readonly rawTrailers?: Dispatcher.DispatchController['rawTrailers']
}

/** Before a response has a source: pausing and resuming wait for one; an abort is remembered. */
const NO_SOURCE: ResponseSource = { pause() {}, resume() {}, abort() {} }

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
  #headers: HeaderRecord = {}
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
