import { debuglog } from 'node:util'
import type { Dispatcher } from 'undici'
import { BackgroundRevalidations } from './background-revalidation.js'
import { GuardedStore } from './guarded-store.js'
import { invalidateAfterUnsafeRequest, isUnsafeMethod } from './invalidation.js'
import { keyOfNormalized, toCacheRequest, type CacheRequest } from './key.js'
import { toCurrentHandler, type AnyHandler } from './legacy-handler.js'
import { andThen } from './maybe-promise.js'
import { resolveOptions, type CacheOptions, type ResolvedOptions } from './options.js'
import { decide, isLookupBypassed, revalidationHeaders, staleIfErrorAllows, ttlSeconds, type Decision, type ForwardReason } from './policy.js'
import { RevalidationHandler } from './revalidation.js'
import { serveEntry, serveGatewayTimeout, serveNotModified, type ServeContext } from './serve.js'
import type { ResponseEntry } from './store.js'
import { TeeHandler, type TeeContext } from './tee.js'
import { isNotModified, isValidationRequest } from './validation.js'
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
  const background = new BackgroundRevalidations()
  return (dispatch) => (dispatchOptions, anyHandler) => {
    const handler = toCurrentHandler(anyHandler)
    // Upgrades and tunnels are not HTTP exchanges a cache can take part in.
    if (dispatchOptions.upgrade || dispatchOptions.method === 'CONNECT') return dispatch(dispatchOptions, handler)
    const exchange: Exchange = { dispatch, dispatchOptions, handler, options, store, background }
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

/** Everything one request's handling needs. */
interface Exchange {
  dispatch: Dispatch
  dispatchOptions: Dispatcher.DispatchOptions
  handler: Dispatcher.DispatchHandler
  options: ResolvedOptions
  store: GuardedStore
  background: BackgroundRevalidations
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
      if (isValidationRequest(request.headers)) answerValidation(exchange, { request, key, decision, mayStore })
      else act(exchange, { request, key, decision, mayStore })
    })
    if (result instanceof Promise) result.catch(fallBack)
  } catch (error) {
    fallBack(error)
  }
}

interface Verdict {
  request: CacheRequest
  key: string
  decision: Decision
  mayStore: boolean
}

function act(exchange: Exchange, { request, key, decision, mayStore }: Verdict): void {
  const { options, handler } = exchange
  switch (decision.action) {
    case 'serve':
      return serveEntry(decision.entry, handler, servedFromStore(exchange, request, key, decision.entry))
    case 'serve-stale-and-revalidate':
      serveEntry(decision.entry, handler, servedFromStore(exchange, request, key, decision.entry))
      return revalidateInBackground(exchange, request, key, decision.entry)
    case 'revalidate':
      return revalidate(exchange, { request, key, entry: decision.entry, reason: decision.reason, mayStore })
    case 'gateway-timeout':
      return serveGatewayTimeout(handler, { reason: decision.reason, cacheName: options.cacheStatus })
    case 'forward':
      if (!mayStore) return void forward(exchange, decision.reason)
      return forwardAndStore(exchange, request, key, decision.reason)
  }
}

/**
 * A caller's own `If-None-Match`/`If-Modified-Since` (RFC 9111 §4.3.2): a fresh entry whose validators
 * match answers 304; otherwise the request goes to the origin as the caller made it.
 */
function answerValidation(exchange: Exchange, { request, key, decision, mayStore }: Verdict): void {
  if (decision.action === 'serve' && decision.status === 'hit' && isNotModified(decision.entry, request.headers)) {
    return serveNotModified(decision.entry, exchange.handler, servedFromStore(exchange, request, key, decision.entry))
  }
  if (!mayStore) return void forward(exchange, 'request')
  forwardAndStore(exchange, request, key, 'request')
}

/** How a response goes out from the store without asking the origin: a `hit` member, fresh or stale by its ttl. */
function servedFromStore(exchange: Exchange, request: CacheRequest, key: string, entry: ResponseEntry): ServeContext {
  const now = Date.now()
  return {
    method: request.method,
    cacheName: exchange.options.cacheStatus,
    member: { hit: true, ttlSeconds: ttlSeconds(entry, now), key },
    now,
  }
}

/** Asks the origin about a stored response that may not be served as it is, with its validators. */
function revalidate(
  exchange: Exchange,
  { request, key, entry, reason, mayStore }: { request: CacheRequest; key: string; entry: ResponseEntry; reason: 'stale' | 'request'; mayStore: boolean },
): void {
  const { shared, staleIfError, cacheStatus } = exchange.options
  const { headers, context } = revalidationOf(exchange, request, key, entry)
  const handler = new RevalidationHandler(exchange.handler, {
    ...context,
    cacheName: cacheStatus,
    reason,
    mayStore,
    mayServeStaleOnError: () => staleIfErrorAllows(entry, request, { shared, now: Date.now(), staleIfError }),
  })
  exchange.dispatch({ ...exchange.dispatchOptions, headers }, handler)
}

/**
 * RFC 5861 §3: refreshes a stale entry behind the response already served from it. It asks for the
 * entry's own method (a HEAD served from a stored GET refreshes the GET), answers nobody and never
 * serves stale on error.
 */
function revalidateInBackground(exchange: Exchange, request: CacheRequest, key: string, entry: ResponseEntry): void {
  const ownRequest: CacheRequest = { ...request, method: entry.method }
  const { headers, context } = revalidationOf(exchange, ownRequest, key, entry)
  exchange.background.start(key, (discard) => {
    const handler = new RevalidationHandler(discard, {
      ...context,
      cacheName: false,
      reason: 'stale',
      mayStore: true,
      mayServeStaleOnError: () => false,
    })
    exchange.dispatch({ ...exchange.dispatchOptions, method: entry.method, headers, body: null }, handler)
  })
}

/** The request headers that revalidate `entry`, and what any revalidation of it needs to know. */
function revalidationOf(exchange: Exchange, request: CacheRequest, key: string, entry: ResponseEntry) {
  const { options, store } = exchange
  const { headers, conditional } = revalidationHeaders(entry, request)
  const context = { entry, request, key, store, shared: options.shared, maxEntrySize: options.maxEntrySize, conditional }
  return { headers, context }
}

/**
 * Sends the request to the origin; the response passes through with `Cache-Status` and is not stored.
 * `onFinalResponse` sees the response's status and headers first (invalidation after unsafe methods).
 */
function forward(exchange: Exchange, reason: ForwardReason, onFinalResponse?: TeeContext['onFinalResponse']): boolean {
  const tee = new TeeHandler(exchange.handler, {
    reason,
    cacheName: exchange.options.cacheStatus,
    ...(onFinalResponse ? { onFinalResponse } : {}),
  })
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
