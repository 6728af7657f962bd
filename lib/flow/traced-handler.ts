import type { Dispatcher } from 'undici'
import { requestTracing, type RequestTrace } from '../diagnostics.js'
import { cacheInfo } from '../rules/cache-status.js'
import type { HeaderRecord } from '../rules/headers.js'
import { RELEASED_HANDLER } from './released-handler.js'

/**
 * The caller's handler, seen by the `undici-http-cache:request` tracing channel (issue #19): the trace's
 * `start` and `end` are published around `dispatch()`, and this publishes `asyncStart` and `asyncEnd`
 * around the caller's last callback (its response's end, its error with `error` first, or an upgrade),
 * on the one context object a tracer keys its span by, filled in with what the cache did as the
 * response's head arrives. Made only while the channel has subscribers.
 */
export class TracedHandler implements Dispatcher.DispatchHandler {
  #handler: Dispatcher.DispatchHandler
  readonly #trace: RequestTrace
  readonly #cacheName: string | false
  #asyncStarted = false
  #ended = false

  constructor(handler: Dispatcher.DispatchHandler, trace: RequestTrace, cacheName: string | false) {
    this.#handler = handler
    this.#trace = trace
    this.#cacheName = cacheName
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context)
  }

  /** An upgrade ends the exchange: no end or error follows it, so the trace ends here. */
  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, socket: never): void {
    this.#trace.statusCode = statusCode
    this.#last(() => this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket), true)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, statusText?: string): void {
    if (statusCode >= 200) {
      const trace = this.#trace
      trace.statusCode = statusCode
      if (this.#cacheName !== false) {
        const field = headers['cache-status']
        trace.cacheStatus = Array.isArray(field) ? field.join(', ') : field
        trace.status = cacheInfo(headers, this.#cacheName).status
      }
    }
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusText)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: HeaderRecord): void {
    this.#last(() => this.#handler.onResponseEnd?.(controller, trailers), false)
  }

  /** Also for a caller's `onResponseEnd` that threw, which undici then reports here: the trace ends once, after it. */
  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (!this.#ended) {
      this.#trace.error = error
      requestTracing.error.publish(this.#trace)
    }
    this.#last(() => this.#handler.onResponseError?.(controller, error), true)
  }

  // The callbacks of undici's handler API besides the above, passed on as the tee passes them.
  onResponseStarted(): void {
    ;(this.#handler as { onResponseStarted?: () => void }).onResponseStarted?.()
  }

  onBodySent(chunk: Buffer): void {
    this.#handler.onBodySent?.(chunk)
  }

  onRequestSent(): void {
    this.#handler.onRequestSent?.()
  }

  /**
   * The caller's last callback, between the trace's `asyncStart` and `asyncEnd`, as a callback's would be.
   * A throwing `onResponseEnd` does not end the trace: undici reports the throw to `onResponseError`, which
   * does (`final`: nothing follows an error or an upgrade, so the trace ends whatever the callback does).
   */
  #last(callback: () => void, final: boolean): void {
    if (this.#ended) return callback()
    if (!this.#asyncStarted) requestTracing.asyncStart.publish(this.#trace)
    this.#asyncStarted = true
    if (final) {
      try {
        callback()
      } finally {
        this.#end()
      }
    } else {
      callback()
      this.#end()
    }
  }

  #end(): void {
    this.#ended = true
    requestTracing.asyncEnd.publish(this.#trace)
    this.#handler = RELEASED_HANDLER // the caller has had its response (released-handler.ts)
  }
}
