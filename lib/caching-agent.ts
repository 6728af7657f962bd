import type { EventEmitter } from 'node:events'
import { Agent, Dispatcher } from 'undici'
import type { CacheInspector } from './inspect.js'
import { createCacheInterceptor } from './interceptor.js'
import type { AnyHandler } from './flow/legacy-handler.js'
import { resolveAgentOptions, type CachingAgentOptions } from './options.js'
import { agentWaitLimits, UNKNOWN_WAIT_LIMITS } from './flow/wait-limits.js'

/** Events an undici dispatcher emits about its connections; passed on so pools and agents above see them. */
const FORWARDED_EVENTS = ['connect', 'disconnect', 'connectionError', 'drain'] as const

/**
 * An undici `Dispatcher` with an RFC 9111 cache in front of an inner dispatcher (default `new Agent()`).
 * Use it globally (`setGlobalDispatcher(new CachingAgent())`, which Node's own `fetch` follows too), per
 * request (`{ dispatcher: agent }`), or around any dispatcher (`new CachingAgent({ dispatcher: pool })`).
 */
export class CachingAgent extends Dispatcher {
  readonly #dispatcher: Dispatcher
  readonly #dispatch: (options: Dispatcher.DispatchOptions, handler: AnyHandler) => boolean
  readonly #writesDone: () => Promise<void>
  /** What this agent has stored: `urls()`, `entries()`, `get()`, `delete()`, `clear()`, `recreateKeys()`, `stats`. */
  readonly cache: CacheInspector

  constructor(options?: CachingAgentOptions) {
    super()
    const resolved = resolveAgentOptions(options)
    this.#dispatcher = resolved.dispatcher ?? new Agent(resolved.agentOptions)
    const inner = this.#dispatcher
    // The timeouts of an Agent made here are known; a dispatcher the user made keeps its own to itself.
    const limits = resolved.dispatcher === undefined ? agentWaitLimits(resolved.agentOptions) : UNKNOWN_WAIT_LIMITS
    // Likewise, only an Agent made here is known to hand over response heads made afresh for each response.
    const { interceptor, writesDone } = createCacheInterceptor(resolved.cache, limits, resolved.dispatcher === undefined)
    this.cache = interceptor.cache
    this.#writesDone = writesDone
    this.#dispatch = interceptor((dispatchOptions, handler) => inner.dispatch(dispatchOptions, handler))
    const emitter: EventEmitter = this
    for (const event of FORWARDED_EVENTS) {
      ;(inner as EventEmitter).on(event, (...args: unknown[]) => emitter.emit(event, ...args))
    }
  }

  /** Serves the request from the cache or sends it on; accepts current and legacy (Node's fetch) handlers. */
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#dispatch(options, handler)
  }

  /**
   * Closes the inner dispatcher once its requests are done, and resolves once what they stored has reached
   * the store (an asynchronous store's writes included), so that another agent on the same store finds it.
   * The store is the caller's to close.
   */
  override close(): Promise<void>
  /** `close()`, calling `callback` once it is done. */
  override close(callback: () => void): void
  override close(callback?: () => void): Promise<void> | void {
    const closed = this.#dispatcher.close().then(this.#writesDone)
    if (!callback) return closed
    closed.then(
      () => callback(),
      () => callback(),
    )
  }

  /** Destroys the inner dispatcher, failing its requests in flight. */
  override destroy(): Promise<void>
  /** Destroys the inner dispatcher, failing its requests in flight with `error`. */
  override destroy(error: Error | null): Promise<void>
  /** `destroy()`, calling `callback` once it is done. */
  override destroy(callback: () => void): void
  /** `destroy(error)`, calling `callback` once it is done. */
  override destroy(error: Error | null, callback: () => void): void
  override destroy(errorOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    if (typeof errorOrCallback === 'function') return this.#dispatcher.destroy(errorOrCallback)
    if (callback) return this.#dispatcher.destroy(errorOrCallback ?? null, callback)
    return this.#dispatcher.destroy(errorOrCallback ?? null)
  }
}
