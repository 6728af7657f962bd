import { debuglog } from 'node:util'
import type { Dispatcher } from 'undici'
import { BackgroundRevalidations } from './background-revalidation.js'
import { Flights } from './coalescing.js'
import { act, answerValidation, forward, forwardAndStore, type Dispatch, type Exchange } from './exchange.js'
import { GuardedStore } from './guarded-store.js'
import { invalidateAfterUnsafeRequest, isUnsafeMethod } from './invalidation.js'
import { keyOfNormalized, toCacheRequest, type CacheRequest } from './key.js'
import { toCurrentHandler, type AnyHandler } from './legacy-handler.js'
import { andThen } from './maybe-promise.js'
import { resolveOptions, type CacheOptions, type ResolvedOptions } from './options.js'
import { decide, isLookupBypassed, pickHeaders } from './policy.js'
import { isValidationRequest } from './validation.js'
import { lookup } from './variants.js'

const log = debuglog('undici-http-cache')

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
  const background = new BackgroundRevalidations()
  const flights = new Flights()
  return (dispatch) => (dispatchOptions, anyHandler) => {
    const handler = toCurrentHandler(anyHandler)
    // Upgrades and tunnels are not HTTP exchanges a cache can take part in.
    if (dispatchOptions.upgrade || dispatchOptions.method === 'CONNECT') return dispatch(dispatchOptions, handler)
    const exchange: Exchange = { dispatch, dispatchOptions, handler, options, store, background, flights, mayCoalesce: true }
    const request = toCacheRequest(dispatchOptions)
    if (request === undefined) return forward(exchange, 'bypass')
    if (!options.methods.has(request.method)) {
      if (!isUnsafeMethod(request.method)) return forward(exchange, 'method')
      return forward(exchange, 'method', (status, headers) => invalidateAfterUnsafeRequest(store, request.url, status, headers))
    }
    handleCacheable(exchange, request)
    return true
  }
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
      const varyNames = found.found === 'nothing' ? found.varyNames : undefined
      const variant = entry?.varyHeaders ?? (varyNames ? pickHeaders(request.headers, varyNames) : undefined)
      acted = true
      const verdict = { request, key, decision, mayStore, variant }
      if (isValidationRequest(request.headers)) answerValidation(exchange, verdict)
      else act(exchange, verdict, handleCacheable)
    })
    if (result instanceof Promise) result.catch(fallBack)
  } catch (error) {
    fallBack(error)
  }
}

