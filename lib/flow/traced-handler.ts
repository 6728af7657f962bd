import type { Dispatcher } from 'undici'
import { requestTracing, type RequestTrace } from '../diagnostics.js'
import { cacheInfo } from '../rules/cache-status.js'
import type { HeaderRecord } from '../rules/headers.js'
import { RELEASED_HANDLER } from './released-handler.js'

/**
 * The caller's handler, seen by the `undici-http-cache:request` tracing channel (issue #19): the trace's
 * `start` and `end` are published around `dispatch()`, and this publishes `asyncStart` and `asyncEnd`
 * once the response has ended (with `error` first when it failed), on the one context object a tracer
 * keys its span by, filled in with what the cache did as the response's head arrives. Made only while
 * the channel has subscribers.
 */
export class TracedHandler implements Dispatcher.DispatchHandler {
  #handler: Dispatcher.DispatchHandler
  readonly #trace: RequestTrace
  readonly #cacheName: string | false

  constructor(handler: Dispatcher.DispatchHandler, trace: RequestTrace, cacheName: string | false) {
    this.#handler = handler
    this.#trace = trace
    this.#cacheName = cacheName
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context)
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, socket: never): void {
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket)
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
    const handler = this.#handler
    this.#handler = RELEASED_HANDLER
    this.#finish(() => handler.onResponseEnd?.(controller, trailers))
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    const handler = this.#handler
    this.#handler = RELEASED_HANDLER
    this.#trace.error = error
    requestTracing.error.publish(this.#trace)
    this.#finish(() => handler.onResponseError?.(controller, error))
  }

  /** The caller's last callback, between the trace's `asyncStart` and `asyncEnd`, as a callback's would be. */
  #finish(last: () => void): void {
    requestTracing.asyncStart.publish(this.#trace)
    try {
      last()
    } finally {
      requestTracing.asyncEnd.publish(this.#trace)
    }
  }
}
