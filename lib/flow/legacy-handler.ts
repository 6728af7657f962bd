import type { Dispatcher } from 'undici'
import { toRawHeaders, type HeaderRecord } from '../rules/headers.js'

/**
 * The handler shape of undici 6 and earlier (onConnect, onHeaders, onData, onComplete, onError). Node's
 * own fetch is backed by the undici bundled with Node and calls the global dispatcher with it.
 */
export interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean | void
  onData?(chunk: Buffer): boolean | void
  onComplete?(rawTrailers: Buffer[] | null): void
  onError?(error: Error): void
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: unknown): void
  onResponseStarted?(): void
  onBodySent?(chunk: unknown): void
  onRequestSent?(): void
}

/** Both handler shapes, as `dispatch()` may receive them. */
export type AnyHandler = Dispatcher.DispatchHandler | LegacyHandler

/**
 * Returns a handler of the current shape: the handler itself, or an adapter around a legacy one (undici
 * tells them apart by `onRequestStart`, then `onConnect`). `undefined` for a handler of neither shape, which
 * undici refuses with an error to the handler: the cache hands it on as it is, so that its caller gets that
 * error as it would without the cache (an adapter would call none of its methods, and it would wait forever).
 */
export function toCurrentHandler(handler: AnyHandler): Dispatcher.DispatchHandler | undefined {
  if (typeof (handler as Dispatcher.DispatchHandler).onRequestStart === 'function') {
    return handler as Dispatcher.DispatchHandler
  }
  if (typeof (handler as LegacyHandler).onConnect !== 'function') return undefined
  return new LegacyHandlerAdapter(handler as LegacyHandler)
}

/** Calls a legacy handler from current-shape callbacks; a `false` from onHeaders/onData pauses. */
class LegacyHandlerAdapter implements Dispatcher.DispatchHandler {
  readonly #legacy: LegacyHandler

  constructor(legacy: LegacyHandler) {
    this.#legacy = legacy
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#legacy.onConnect?.((reason) => controller.abort(reason ?? new Error('aborted')), context)
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, socket: unknown): void {
    this.#legacy.onUpgrade?.(statusCode, rawHeadersOf(controller.rawHeaders, headers), socket)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, statusText?: string): void {
    const rawHeaders = rawHeadersOf(controller.rawHeaders, headers)
    if (this.#legacy.onHeaders?.(statusCode, rawHeaders, () => controller.resume(), statusText ?? '') === false) {
      controller.pause()
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#legacy.onData?.(chunk) === false) controller.pause()
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: HeaderRecord): void {
    this.#legacy.onComplete?.(rawHeadersOf(controller.rawTrailers, trailers))
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#legacy.onError?.(error)
  }

  onResponseStarted(): void {
    this.#legacy.onResponseStarted?.()
  }

  onBodySent(chunk: Buffer): void {
    this.#legacy.onBodySent?.(chunk)
  }

  onRequestSent(): void {
    this.#legacy.onRequestSent?.()
  }
}

function rawHeadersOf(raw: Dispatcher.DispatchController['rawHeaders'], headers: HeaderRecord): Buffer[] {
  if (Array.isArray(raw)) return raw.map((item) => (Buffer.isBuffer(item) ? item : Buffer.from(item, 'latin1')))
  return toRawHeaders(headers ?? {})
}
