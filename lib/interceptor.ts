import type { Dispatcher } from 'undici'
import { BackgroundRevalidations } from './background-revalidation.js'
import { Flights } from './coalescing.js'
import { CallerController } from './controller.js'
import { act, answerValidation, forward, forwardAndStore, type Dispatch, type Exchange } from './exchange.js'
import { filterAllows } from './filter.js'
import { GuardedStore } from './guarded-store.js'
import { CacheInspector } from './inspect.js'
import { invalidateAfterUnsafeRequest, isUnsafeMethod } from './invalidation.js'
import { keyRequest, toCacheRequest, type CacheRequest } from './key.js'
import { toCurrentHandler, type AnyHandler } from './legacy-handler.js'
import { andThen } from './maybe-promise.js'
import { resolveOptions, type CacheOptions, type ResolvedOptions } from './options.js'
import { decide, isLookupBypassed, pickHeaders } from './policy.js'
import { readRequestBody } from './request-body.js'
import { StatsCounters } from './stats.js'
import { isValidationRequest } from './validation.js'
import { lookup } from './variants.js'

/**
 * An interceptor for `dispatcher.compose()`; it accepts handlers of the current and the legacy shape.
 * `cache` inspects and maintains what it stores.
 */
export type CacheInterceptor = ((dispatch: Dispatch) => (options: Dispatcher.DispatchOptions, handler: AnyHandler) => boolean) & {
  readonly cache: CacheInspector
}

/**
 * The cache as an undici interceptor: `new Client(origin).compose(cacheInterceptor({ store }))`.
 * Options are checked here, at creation; a bad one throws a `TypeError` naming it.
 */
export function cacheInterceptor(options?: CacheOptions): CacheInterceptor {
  return createCacheInterceptor(resolveOptions(options)).interceptor
}

/**
 * The interceptor for options already resolved (shared with `CachingAgent`), and a way to wait for the
 * store writes its responses began (`CachingAgent.close()` does).
 */
export function createCacheInterceptor(options: ResolvedOptions): { interceptor: CacheInterceptor; writesDone: () => Promise<void> } {
  const stats = new StatsCounters()
  const store = new GuardedStore(options.store, stats, options.storeTimeoutMs)
  const background = new BackgroundRevalidations(stats)
  const flights = new Flights()
  const interceptor = (dispatch: Dispatch) => (dispatchOptions: Dispatcher.DispatchOptions, anyHandler: AnyHandler): boolean => {
    const handler = toCurrentHandler(anyHandler)
    // Upgrades and tunnels are not HTTP exchanges a cache can take part in.
    if (dispatchOptions.upgrade || dispatchOptions.method === 'CONNECT') return dispatch(dispatchOptions, handler)
    const exchange: Exchange = { dispatch, dispatchOptions, handler, options, store, stats, background, flights, mayCoalesce: true }
    const request = toCacheRequest(dispatchOptions, options.knownUrls)
    if (request === undefined) return forward(exchange, 'bypass')
    if (!options.methods.has(request.method)) {
      if (!isUnsafeMethod(request.method)) return forward(exchange, 'method')
      const keyOfTarget = (url: string): string => keyRequest({ method: 'GET', url, headers: request.headers }, options).key
      return forward(exchange, 'method', (status, headers) => invalidateAfterUnsafeRequest(store, { url: request.url, status, headers, keyOfTarget }))
    }
    if (request.method === 'GET' || request.method === 'HEAD') handleCacheable(exchange, request)
    else handleWithBody(exchange, request).catch((error: unknown) => failAfterDispatch(handler, error))
    return true
  }
  return { interceptor: Object.assign(interceptor, { cache: new CacheInspector(store, options, stats) }), writesDone: () => store.writesDone() }
}

/**
 * A method cached with its body in the key (POST, QUERY): the body is read whole first, then the request
 * goes on as any other, sending those bytes. A body that cannot be keyed (too large, a FormData) or fails
 * to read is sent as the caller gave it, uncached, so that the request behaves as it would without a cache.
 */
async function handleWithBody(exchange: Exchange, request: CacheRequest): Promise<void> {
  let read
  try {
    read = await readRequestBody(exchange.dispatchOptions.body)
  } catch (error) {
    read = { read: 'not-keyable' as const, body: failingBody(error) }
  }
  if (read.read === 'not-keyable') {
    forward({ ...exchange, dispatchOptions: { ...exchange.dispatchOptions, body: read.body as Dispatcher.DispatchOptions['body'] } }, 'bypass')
    return
  }
  const body = Buffer.from(read.bytes.buffer, read.bytes.byteOffset, read.bytes.byteLength)
  handleCacheable({ ...exchange, dispatchOptions: { ...exchange.dispatchOptions, body } }, { ...request, body })
}

/** A body that fails as the caller's did, so that undici reports that failure through the usual path. */
async function* failingBody(error: unknown): AsyncGenerator<Uint8Array> {
  throw error
}

/**
 * Once `dispatch()` has returned, an error (undici refusing the request as it is sent on, say) goes to the
 * handler, as undici's own dispatchers report it, and is never thrown.
 */
function failAfterDispatch(handler: Dispatcher.DispatchHandler, error: unknown): void {
  const controller = new CallerController()
  handler.onRequestStart?.(controller, {})
  handler.onResponseError?.(controller, error instanceof Error ? error : new Error(String(error)))
}

/**
 * key → lookup → decide → act. A failure of the cache's own logic before anything was sent or served
 * sends the request on uncached: the cache never fails a request that would succeed without it.
 */
function handleCacheable(exchange: Exchange, request: CacheRequest): void {
  let acted = false
  const fallBack = (error: unknown): void => {
    exchange.store.recordFailure('keying or lookup', error) // the request goes on uncached
    if (!acted) forward(exchange, 'bypass')
  }
  try {
    const { options, store } = exchange
    const keyed = keyRequest(request, options)
    const key = keyed.key
    // urlsExpireAfter's 'no-store': nothing is stored for this URL, nor served from what was.
    if (options.expiryRules?.(keyed.storedUrl) === 'no-store') {
      acted = true
      return void forward(exchange, 'bypass')
    }
    if (isLookupBypassed(request.headers)) {
      acted = true
      return forwardAndStore(exchange, keyed, key, 'request')
    }
    const result = andThen(lookup(store, key, request.headers, keyed.checksUrl ? keyed.storedUrl : undefined), (found) => {
      const stored = found.found === 'response' ? found.entry : undefined
      // The user's filter is asked again on read: a stored response it now refuses counts as not stored.
      const entry = stored !== undefined && filterAllows(options.filter, keyed, stored, store) ? stored : undefined
      const missReason = found.found === 'nothing' ? found.missReason : 'uri-miss'
      const decision = decide(entry, request, { shared: options.shared, now: Date.now(), missReason })
      // A HEAD response has no body, so it must not take the place of a stored GET response.
      const mayStore = !(request.method === 'HEAD' && entry !== undefined && entry.method !== 'HEAD')
      const varyNames = found.found === 'nothing' ? found.varyNames : undefined
      const variant = entry?.varyHeaders ?? (varyNames ? pickHeaders(request.headers, varyNames) : undefined)
      acted = true
      const verdict = { request: keyed, key, decision, mayStore, variant }
      if (isValidationRequest(request.headers)) answerValidation(exchange, verdict)
      else act(exchange, verdict, handleCacheable)
    })
    if (result instanceof Promise) result.catch(fallBack).catch((error: unknown) => failAfterDispatch(exchange.handler, error))
  } catch (error) {
    fallBack(error)
  }
}

