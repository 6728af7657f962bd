import { debuglog } from 'node:util'
import type { Dispatcher } from 'undici'
import { GuardedStore } from './guarded-store.js'
import { keyOfNormalized, toCacheRequest, type CacheRequest } from './key.js'
import { toCurrentHandler, type AnyHandler } from './legacy-handler.js'
import { andThen } from './maybe-promise.js'
import { resolveOptions, type CacheOptions, type ResolvedOptions } from './options.js'
import { decide, isLookupBypassed, type Decision, type ForwardReason } from './policy.js'
import { serveEntry, serveGatewayTimeout } from './serve.js'
import { TeeHandler } from './tee.js'
import { lookup } from './variants.js'

const log = debuglog('undici-http-cache')

/** A dispatch function, as undici passes one to an interceptor. */
type Dispatch = (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => boolean

/** An interceptor for `dispatcher.compose()`; it accepts handlers of the current and the legacy shape. */
export type CacheInterceptor = (dispatch: Dispatch) => (options: Dispatcher.DispatchOptions, handler: AnyHandler) => boolean

/**
 * The cache as an undici interceptor: `new Client(origin).compose(cacheInterceptor({ store }))`.
 * Options are checked here, at creation; a bad one throws a `TypeError` naming it.
 */
export function cacheInterceptor(options?: CacheOptions): CacheInterceptor {
  return createCacheInterceptor(resolveOptions(options))
}

/** The interceptor for options already resolved (shared with `CachingAgent`). */
export function createCacheInterceptor(options: ResolvedOptions): CacheInterceptor {
  const store = new GuardedStore(options.store)
  return (dispatch) => (dispatchOptions, anyHandler) => {
    const handler = toCurrentHandler(anyHandler)
    // Upgrades and tunnels are not HTTP exchanges a cache can take part in.
    if (dispatchOptions.upgrade || dispatchOptions.method === 'CONNECT') return dispatch(dispatchOptions, handler)
    const request = toCacheRequest(dispatchOptions)
    if (request === undefined) return forward({ dispatch, dispatchOptions, handler, options, store }, 'bypass')
    if (!options.methods.has(request.method)) return forward({ dispatch, dispatchOptions, handler, options, store }, 'method')
    handleCacheable({ dispatch, dispatchOptions, handler, options, store }, request)
    return true
  }
}

/** Everything one request's handling needs. */
interface Exchange {
  dispatch: Dispatch
  dispatchOptions: Dispatcher.DispatchOptions
  handler: Dispatcher.DispatchHandler
  options: ResolvedOptions
  store: GuardedStore
}

/**
 * key → lookup → decide → act. A failure of the cache's own logic before anything was sent or served
 * sends the request on uncached: the cache never fails a request that would succeed without it.
 */
function handleCacheable(exchange: Exchange, request: CacheRequest): void {
  let acted = false
  const fallBack = (error: unknown): void => {
    exchange.store.errors++
    log('cache logic failed, sending the request uncached: %s', error)
    if (!acted) forward(exchange, 'bypass')
  }
  try {
    const key = keyOfNormalized(request.method, request.url)
    if (isLookupBypassed(request.headers)) {
      acted = true
      return forwardAndStore(exchange, request, key, 'request')
    }
    const result = andThen(lookup(exchange.store, key, request.headers, request.url), (found) => {
      const entry = found.found === 'response' ? found.entry : undefined
      const missReason = found.found === 'nothing' ? found.missReason : 'uri-miss'
      const decision = decide(entry, request, { shared: exchange.options.shared, now: Date.now(), missReason })
      // A HEAD response has no body, so it must not take the place of a stored GET response.
      const mayStore = !(request.method === 'HEAD' && entry !== undefined && entry.method !== 'HEAD')
      acted = true
      act(exchange, { request, key, decision, mayStore })
    })
    if (result instanceof Promise) result.catch(fallBack)
  } catch (error) {
    fallBack(error)
  }
}

function act(
  exchange: Exchange,
  { request, key, decision, mayStore }: { request: CacheRequest; key: string; decision: Decision; mayStore: boolean },
): void {
  const { options, handler } = exchange
  switch (decision.action) {
    case 'serve':
      return serveEntry(decision.entry, handler, {
        status: decision.status,
        key,
        method: request.method,
        cacheName: options.cacheStatus,
        now: Date.now(),
      })
    case 'gateway-timeout':
      return serveGatewayTimeout(handler, { reason: decision.reason, cacheName: options.cacheStatus })
    case 'forward':
      if (!mayStore) return void forward(exchange, decision.reason)
      return forwardAndStore(exchange, request, key, decision.reason)
  }
}

/** Sends the request to the origin; the response passes through with `Cache-Status` and is not stored. */
function forward(exchange: Exchange, reason: ForwardReason): boolean {
  const tee = new TeeHandler(exchange.handler, { reason, cacheName: exchange.options.cacheStatus })
  return exchange.dispatch(exchange.dispatchOptions, tee)
}

/** Sends the request to the origin and stores the response if it may be stored. */
function forwardAndStore(exchange: Exchange, request: CacheRequest, key: string, reason: ForwardReason): void {
  const { options, store } = exchange
  const tee = new TeeHandler(exchange.handler, {
    reason,
    cacheName: options.cacheStatus,
    storage: { request, key, store, shared: options.shared, maxEntrySize: options.maxEntrySize },
  })
  exchange.dispatch(exchange.dispatchOptions, tee)
}
