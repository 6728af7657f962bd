import type { Dispatcher } from 'undici'
import { toRawHeaders, type HeaderRecord } from './headers.js'

/**
 * undici's fetch reads a response's headers from `controller.rawHeaders`, so whenever the cache hands a
 * handler headers of its own making (a hit, or a passed-through response with `Cache-Status` added) the
 * controller must show those headers in raw form. They are built only if someone reads them.
 */
abstract class HeadersController {
  #headers: HeaderRecord = {}
  #rawHeaders: Buffer[] | undefined

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
    return []
  }
}

/** The controller of a response replayed from the store: pausing holds back the rest of the body. */
export class ReplayController extends HeadersController implements Dispatcher.DispatchController {
  #aborted = false
  #paused = false
  #reason: Error | null = null
  #onResume: (() => void) | undefined
  readonly #onAbort: (reason: Error) => void

  /** `onAbort` runs once, when the consumer aborts. */
  constructor(onAbort: (reason: Error) => void) {
    super()
    this.#onAbort = onAbort
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
    this.#onAbort(reason)
  }

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    const onResume = this.#onResume
    this.#onResume = undefined
    onResume?.()
  }

  /** Runs `callback` when the consumer next resumes. */
  whenResumed(callback: () => void): void {
    this.#onResume = callback
  }
}

/** The controller of a response passed through from the origin: the origin's controller, with our headers. */
export class ForwardController extends HeadersController implements Dispatcher.DispatchController {
  readonly #upstream: Dispatcher.DispatchController

  constructor(upstream: Dispatcher.DispatchController) {
    super()
    this.#upstream = upstream
  }

  get aborted(): boolean {
    return this.#upstream.aborted
  }

  get paused(): boolean {
    return this.#upstream.paused
  }

  get reason(): Error | null {
    return this.#upstream.reason
  }

  abort(reason: Error): void {
    this.#upstream.abort(reason)
  }

  pause(): void {
    this.#upstream.pause()
  }

  resume(): void {
    this.#upstream.resume()
  }

  override get rawTrailers(): Buffer[] {
    const trailers = this.#upstream.rawTrailers
    return Array.isArray(trailers) ? trailers.map((item) => Buffer.from(item)) : []
  }
}
