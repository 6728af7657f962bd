import type { Dispatcher } from 'undici'
import { BackgroundRevalidations } from './flow/background-revalidation.js'
import { hasDeclaredLength } from './rules/body-integrity.js'
import { requestTracing, summarizeDispatch, type RequestTrace } from './diagnostics.js'
import { Flights } from './flow/coalescing.js'
import { CallerController, HeldCaller } from './flow/controller.js'
import { generationKey } from './keys/credential-generations.js'
import { act, answerValidation, forward, forwardAndStore, type Dispatch, type Exchange } from './flow/exchange.js'
import { filterAllows } from './keys/filter.js'
import { GuardedStore } from './stores/guarded-store.js'
import { CacheInspector } from './inspect.js'
import { invalidateAfterUnsafeRequest, isUnsafeMethod } from './flow/invalidation.js'
import { normalizeRequestHeaders, type RequestHeaders } from './rules/headers.js'
import { keyRequest, toCacheRequest, type CacheRequest, type KeyedRequest } from './keys/key.js'
import { toCurrentHandler, type AnyHandler } from './flow/legacy-handler.js'
import { TracedHandler } from './flow/traced-handler.js'
import { isPromise } from './stores/maybe-promise.js'
import { resolveOptions, type CacheOptions, type ResolvedOptions } from './options.js'
import { isLookupBypassed, isOnlyIfCached, pickHeaders } from './rules/directives.js'
import { decide, type ForwardReason } from './rules/policy.js'
import { serveGatewayTimeout } from './flow/serve.js'
import { readRequestBody, type ReadBody } from './keys/request-body.js'
import { mayServeStored } from './rules/response-fields.js'
import { StatsCounters } from './stats.js'
import { isValidationRequest } from './rules/validation.js'
import { invalidatedUrl } from './keys/urls.js'
import { lookup, type Lookup } from './keys/variants.js'
import { UNKNOWN_WAIT_LIMITS, type WaitLimits } from './flow/wait-limits.js'

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
 * store writes its responses began (`CachingAgent.close()` does). `dispatcherLimits`: the timeouts of the
 * dispatcher it sends to, when the caller knows them (coalesced requests wait no longer than they allow).
 * `freshHeads`: that dispatcher is undici's own `Agent`, whose response heads are made afresh for each
 * response, so that `Cache-Status` can be added to them in place (see `TeeContext.freshHeads`).
 */
export function createCacheInterceptor(
  options: ResolvedOptions,
  dispatcherLimits: WaitLimits = UNKNOWN_WAIT_LIMITS,
  freshHeads = false,
): { interceptor: CacheInterceptor; writesDone: () => Promise<void> } {
  const stats = new StatsCounters()
  const store = new GuardedStore(options.store, { stats, timeoutMs: options.storeTimeoutMs, isIntact: hasDeclaredLength })
  const background = new BackgroundRevalidations(stats)
  const interceptor = (dispatch: Dispatch) => {
    // Flights per dispatcher composed with: requests sent through two may not wait on each other, as the
    // timeouts a wait relies on may differ between them (issue #16).
    const flights = new Flights(dispatcherLimits)
    /** The cache's handling of one request, its handler of the current shape. */
    const cached = (dispatchOptions: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean => {
      // Upgrades and tunnels are not HTTP exchanges a cache can take part in.
      if (dispatchOptions.upgrade || dispatchOptions.method === 'CONNECT') return dispatch(dispatchOptions, handler)
      const exchange: Exchange = {
        dispatch,
        dispatchOptions,
        handler,
        options,
        store,
        stats,
        background,
        flights,
        freshHeads,
        mayCoalesce: true,
        controller: undefined,
        flight: undefined,
      }
      const request = toCacheRequest(dispatchOptions, options.knownUrls)
      if (request === undefined) {
        // Not keyed; an unsafe one still invalidates what is stored for the URL it resolves to.
        const url = isUnsafeMethod((dispatchOptions.method ?? 'GET').toUpperCase()) ? invalidatedUrl(dispatchOptions) : undefined
        return url === undefined ? forward(exchange, 'bypass') : forwardInvalidating(exchange, 'bypass', url, normalizeRequestHeaders(dispatchOptions.headers))
      }
      if (!options.methods.has(request.method)) {
        if (!isUnsafeMethod(request.method)) return forward(exchange, 'method')
        return forwardInvalidating(exchange, 'method', request.url, request.headers)
      }
      if (request.method === 'GET' || request.method === 'HEAD') handleCacheable(exchange, request)
      else handleWithBody(exchange, request)
      return true
    }
    return (callerOptions: Dispatcher.DispatchOptions, anyHandler: AnyHandler): boolean => {
      const dispatchOptions = withoutCallerDispatcher(callerOptions)
      const handler = toCurrentHandler(anyHandler)
      // A handler of neither shape goes on to be refused as it would be without the cache.
      if (handler === undefined) return dispatch(dispatchOptions, anyHandler as Dispatcher.DispatchHandler)
      // Traced only when a tracer listened before the request began (issue #19): nothing made otherwise.
      if (!requestTracing.hasSubscribers) return cached(dispatchOptions, handler)
      const trace: RequestTrace = { request: summarizeDispatch(dispatchOptions, options.parameters) }
      return requestTracing.traceSync(() => cached(dispatchOptions, new TracedHandler(handler, trace, options.cacheStatus)), trace)
    }
  }
  return { interceptor: Object.assign(interceptor, { cache: new CacheInspector(store, options, stats) }), writesDone: () => store.writesDone() }
}

/**
 * undici 7's top-level `request(url, { dispatcher })` (and stream, pipeline...) leaves its `dispatcher`
 * option in the dispatch options, and undici 8's dispatchers refuse any that carry one. That option named
 * this cache, not the dispatcher beyond it: it stops here, so that no request the cache sends on (miss,
 * revalidation, invalidation...) carries it (issue #16).
 */
function withoutCallerDispatcher(options: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
  if (!('dispatcher' in options)) return options
  const { dispatcher: _cache, ...rest } = options as Dispatcher.DispatchOptions & { dispatcher?: unknown }
  return rest
}

/**
 * Sends an unsafe request on; a success invalidates what is stored for its URL (RFC 9111 §4.4): for the
 * request's credentials, without them (what a request with them may be answered from), and for every
 * other user's credentials (their generation record).
 */
function forwardInvalidating(exchange: Exchange, reason: ForwardReason, url: string, requestHeaders: RequestHeaders): boolean {
  const { store, options } = exchange
  const keysOfTarget = (target: string): string[] => {
    const { key, fallbackKey, checksUrl: isDefaultKey } = keyRequest({ method: 'GET', url: target, headers: requestHeaders }, options)
    if (!isDefaultKey) return [key] // a custom key function keys credentials itself: no generations
    return fallbackKey === undefined ? [key, generationKey(key)] : [key, fallbackKey, generationKey(fallbackKey)]
  }
  return forward(exchange, reason, (status, headers) => invalidateAfterUnsafeRequest(store, { url, status, headers, keysOfTarget }))
}

/**
 * A method cached with its body in the key (POST, QUERY): the body is read whole first, then the request
 * goes on as any other, sending those bytes. A body that cannot be keyed (too large, a FormData, any
 * multipart body) or fails to read is sent as the caller gave it, uncached, so that the request behaves as
 * it would without a cache. The caller is held while the body is read: its abort ends the request, and the
 * reading, at once.
 */
function handleWithBody(exchange: Exchange, request: CacheRequest): void {
  // fetch() sends a FormData as a multipart stream, under a boundary made afresh for each request: no two
  // such bodies are alike, and their fields (credentials too) could not be left out of what is stored.
  if (/^\s*multipart\//i.test(request.headers['content-type'] ?? '')) return void forward(exchange, 'bypass')
  const held = new HeldCaller(exchange.handler, exchange.controller)
  void readBody(exchange.dispatchOptions.body, held.signal).then((read) =>
    goOn(held, exchange, (going) => {
      if (read.read === 'not-keyable') return void forward(withBody(going, read.body as Dispatcher.DispatchOptions['body']), 'bypass')
      const body = Buffer.from(read.bytes.buffer, read.bytes.byteOffset, read.bytes.byteLength)
      handleCacheable(withBody(going, body), { ...request, body })
    }),
  )
}

/** The body read for the key; one that fails to read is handed on to fail as the caller's did. */
async function readBody(body: unknown, signal: AbortSignal): Promise<ReadBody> {
  try {
    return await readRequestBody(body, { signal })
  } catch (error) {
    return { read: 'not-keyable', body: failingBody(error) }
  }
}

/** A body that fails as the caller's did, so that undici reports that failure through the usual path. */
async function* failingBody(error: unknown): AsyncGenerator<Uint8Array> {
  throw error
}

function withBody(exchange: Exchange, body: Dispatcher.DispatchOptions['body']): Exchange {
  return { ...exchange, dispatchOptions: { ...exchange.dispatchOptions, body } }
}

/**
 * Goes on with a held request once the cache's asynchronous step is done, unless its caller aborted
 * meanwhile: it has its error then, and nothing is sent.
 */
function goOn(held: HeldCaller, exchange: Exchange, next: (exchange: Exchange) => void): void {
  if (!held.proceed()) return
  const going = { ...exchange, handler: held.handler }
  try {
    next(going)
  } catch (error) {
    failRequest(going, error)
  }
}

/**
 * key → lookup → decide → act. Should the cache's own logic fail before a response reached the caller,
 * the request is sent on uncached: the cache never fails a request that would succeed without it.
 */
function handleCacheable(exchange: Exchange, request: CacheRequest): void {
  try {
    const { options, store } = exchange
    const keyed = keyRequest(request, options)
    // urlsExpireAfter's 'no-store': nothing is stored for this URL, nor served from what was.
    if (options.expiryRules?.(keyed.storedUrl) === 'no-store') return void forward(exchange, 'bypass')
    if (isLookupBypassed(request.headers)) {
      // Such a request is never answered from the store, and with only-if-cached the origin may not be asked.
      if (!isOnlyIfCached(request.headers)) return forwardAndStore(exchange, keyed, keyed.key, 'request')
      return serveGatewayTimeout(exchange.handler, { cacheName: options.cacheStatus, controller: exchange.controller, request: keyed })
    }
    const found = lookup(store, keyed)
    if (!isPromise(found)) return actOnLookup(exchange, request, keyed, found)
    // A store that answers later: the caller is held meanwhile, so that its abort ends the request at once.
    const held = new HeldCaller(exchange.handler, exchange.controller)
    void found.then(
      (result) => goOn(held, exchange, (going) => actOnLookup(going, request, keyed, result)),
      (error: unknown) => goOn(held, exchange, (going) => sendUncached(going, error)),
    )
  } catch (error) {
    sendUncached(exchange, error)
  }
}

/** decide → act, on what the lookup found. */
function actOnLookup(exchange: Exchange, request: CacheRequest, keyed: KeyedRequest, found: Lookup): void {
  try {
    const { options, store } = exchange
    const stored = found.found === 'response' ? found.entry : undefined
    if (stored !== undefined) options.knownUrls.keep(request.url) // its next requests are likely hits
    // The user's filter is asked again on read: a stored response it now refuses counts as not stored. So does,
    // in shared mode, one holding Set-Cookie (stored before issue #16, or by a private cache on the same store).
    const usable = stored !== undefined && mayServeStored(stored.headers, options)
    const entry = usable && filterAllows(options.filter, keyed, stored, store) ? stored : undefined
    const missReason = found.found === 'nothing' ? found.missReason : 'uri-miss'
    const decision = decide(entry, request, { shared: options.shared, now: Date.now(), missReason })
    // A HEAD response has no body, so it must not take the place of a stored GET response.
    const mayStore = !(request.method === 'HEAD' && entry !== undefined && entry.method !== 'HEAD')
    const varyNames = found.found === 'nothing' ? found.varyNames : undefined
    const variant = entry?.varyHeaders ?? (varyNames ? pickHeaders(keyed.storedHeaders, varyNames) : undefined)
    const verdict = { request: keyed, key: keyed.key, decision, mayStore, variant }
    if (isValidationRequest(request.headers)) answerValidation(exchange, verdict, handleCacheable)
    else act(exchange, verdict, handleCacheable)
  } catch (error) {
    sendUncached(exchange, error) // acting throws only before a response reached the caller (see act)
  }
}

/**
 * The cache's own logic failed before any response reached the caller (a key function that throws, an
 * entry that cannot be served): the request goes to the origin uncached, as it would without the cache.
 */
function sendUncached(exchange: Exchange, error: unknown): void {
  exchange.store.recordFailure('keying or lookup', error, () => summarizeDispatch(exchange.dispatchOptions, exchange.options.parameters))
  try {
    forward(exchange, 'bypass')
  } catch (sendError) {
    failRequest(exchange, sendError)
  }
}

/**
 * An error no response can follow (undici refusing the request as it is sent on, say) goes to the handler,
 * as undici's own dispatchers report it, and is never thrown: `dispatch()` may have returned already. A
 * caller started already is not started again.
 */
function failRequest({ handler, controller }: Exchange, error: unknown): void {
  const started = controller ?? new CallerController()
  if (controller === undefined) handler.onRequestStart?.(started, {})
  handler.onResponseError?.(started, error instanceof Error ? error : new Error(String(error)))
}
