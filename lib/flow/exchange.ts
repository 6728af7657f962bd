/**
 * What the cache does with one request once it has decided: serve from the store, revalidate, send to the
 * origin (storing what may be stored), or wait on an identical request already on its way (coalescing).
 */
import type { Dispatcher } from 'undici'
import type { BackgroundRevalidations } from './background-revalidation.js'
import { dispatchFailure, PassingMiss, type Flight, type FlightReport, type Flights } from './coalescing.js'
import type { CallerController } from './controller.js'
import { filterAllows } from '../keys/filter.js'
import type { GuardedStore } from '../stores/guarded-store.js'
import type { HeaderRecord } from '../rules/headers.js'
import type { CacheRequest, KeyedRequest } from '../keys/key.js'
import { LeaderRelay } from './leader-relay.js'
import type { ResolvedOptions } from '../options.js'
import { isOnlyIfCached } from '../rules/directives.js'
import { policyRequestOf, revalidationHeaders, staleIfErrorAllows, ttlSeconds, type Decision, type ForwardReason, type StorageRules } from '../rules/policy.js'
import { RELEASED_HANDLER } from './released-handler.js'
import { RevalidationHandler, type RevalidationContext } from './revalidation.js'
import { serveEntry, serveGatewayTimeout, serveNotModified, type ServeContext } from './serve.js'
import type { StatsCounters } from '../stats.js'
import type { ResponseEntry } from '../stores/store.js'
import { TeeHandler, type TeeContext } from './tee.js'
import { applyNotModified, isNotModified, isValidationRequest, namesValidator } from '../rules/validation.js'
import { saveRenewed } from '../keys/variants.js'

/** A dispatch function, as undici passes one to an interceptor. */
export type Dispatch = (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => boolean

/**
 * Everything one request's handling needs. Every member is always present, `undefined` when it does not
 * apply, so that every exchange, and every copy made with a spread, has one shape and the functions that
 * take one stay monomorphic (issue #17: a miss made exchanges of three shapes).
 */
export interface Exchange {
  dispatch: Dispatch
  dispatchOptions: Dispatcher.DispatchOptions
  handler: Dispatcher.DispatchHandler
  options: ResolvedOptions
  store: GuardedStore
  stats: StatsCounters
  background: BackgroundRevalidations
  flights: Flights
  /** Whether the heads from below are undici's own, made afresh per response (see `TeeContext.freshHeads`). */
  freshHeads: boolean
  /** Whether this request may wait on an identical one; a request that waited once never waits again. */
  mayCoalesce: boolean
  /** The caller's controller, when the caller was started already (it waited on a coalesced request). */
  controller: CallerController | undefined
  /**
   * Set for a request others could wait on: the flight it leads, told once its outcome is in the store (see
   * `TeeContext`), or for a miss that passes (no flight), what notes whether its response was storable.
   */
  flight: FlightReport | undefined
}

/** The decision for one request, with what acting on it needs. */
export interface Verdict {
  request: KeyedRequest
  key: string
  decision: Decision
  /** Whether the origin's answer may be stored (a HEAD's answer never replaces a stored GET). */
  mayStore: boolean
  /** The `Vary` selection of the entry or variant concerned, when known: part of the coalescing identity. */
  variant: Record<string, string | null> | undefined
}

/** Re-runs a request from the store lookup: how a coalesced request goes on after its wait. */
export type Retry = (exchange: Exchange, request: CacheRequest) => void

/**
 * Acts on a decision. Whatever may fail comes before a response is handed to the handler, so that a
 * throw leaves the request free to be sent on uncached (a dispatch that throws has not taken the request).
 */
export function act(exchange: Exchange, verdict: Verdict, retry: Retry): void {
  const { request, key, decision, mayStore } = verdict
  const { options, handler } = exchange
  switch (decision.action) {
    case 'serve':
      serveEntry(decision.entry, handler, servedFromStore(exchange, request, key, decision.entry))
      exchange.stats[decision.status === 'hit' ? 'hits' : 'stale']++ // once served: an entry that fails to serve is no hit
      return
    case 'serve-stale-and-revalidate':
      serveEntry(decision.entry, handler, servedFromStore(exchange, request, key, decision.entry))
      exchange.stats.stale++
      return revalidateInBackground(exchange, request, key, decision.entry)
    case 'gateway-timeout':
      return serveGatewayTimeout(handler, { cacheName: options.cacheStatus, controller: exchange.controller, request })
    case 'revalidate':
    case 'forward': {
      const sender = coalesce(exchange, verdict, retry)
      if (sender === undefined) return // waiting on an identical request
      try {
        if (decision.action === 'revalidate') return revalidate(sender, { request, key, entry: decision.entry, reason: decision.reason, mayStore })
        if (isMiss(decision.reason)) exchange.stats.misses++
        if (!mayStore) return void forward(sender, decision.reason)
        return forwardAndStore(sender, request, key, decision.reason)
      } catch (error) {
        sender.flight?.settle() // a flight this request leads ends unsent: no identical request may wait on it
        throw error
      }
    }
  }
}

/**
 * A caller's own `If-None-Match`/`If-Modified-Since` (RFC 9111 §4.3.2): a fresh entry whose validators
 * match answers 304; otherwise the request goes to the origin as the caller made it.
 */
export function answerValidation(exchange: Exchange, verdict: Verdict, retry: Retry): void {
  const { request, key, decision, mayStore } = verdict
  if (decision.action === 'serve' && decision.status === 'hit' && isNotModified(decision.entry, request.headers)) {
    serveNotModified(decision.entry, exchange.handler, servedFromStore(exchange, request, key, decision.entry))
    exchange.stats.hits++ // once served, as in act
    return
  }
  // only-if-cached: the origin is never asked; the stored response answers in full, or a 504 says there is none.
  if (isOnlyIfCached(request.headers)) return act(exchange, verdict, retry)
  if (!mayStore) return void forward(exchange, 'request')
  const stored = 'entry' in decision ? decision.entry : undefined
  const sentAt = Date.now()
  forwardAndStore(exchange, request, key, 'request', stored && ((status, headers) => renewFromCallersNotModified(exchange, request, key, stored, { status, headers, sentAt })))
}

/**
 * RFC 9111 §4.3.4: a 304 the origin sends to a caller's own conditional request renews the stored response
 * it names by a validator (the caller gets the 304 it asked for). One without validators answered the
 * caller's validators, which say nothing of the stored response, and renews nothing.
 */
function renewFromCallersNotModified(
  exchange: Exchange,
  request: KeyedRequest,
  key: string,
  entry: ResponseEntry,
  response: { status: number; headers: HeaderRecord; sentAt: number },
): void {
  if (response.status !== 304 || !namesValidator(response.headers)) return
  const { options, store } = exchange
  const policyRequest = policyRequestOf({ method: request.method, storedUrl: entry.url, headers: request.headers })
  const rules = storageRulesOf(options, request)
  const result = applyNotModified(entry, policyRequest, response.headers, { shared: options.shared, now: Date.now(), requestTime: response.sentAt, rules })
  if (!result.selected || !result.storable || !filterAllows(options.filter, request, result.entry, store)) return
  void saveRenewed(store, key, request, entry, result.entry)
}

/**
 * Sends the request to the origin; the response passes through with `Cache-Status` and is not stored.
 * `onFinalResponse` sees the response's status and headers first (invalidation after unsafe methods).
 */
export function forward(exchange: Exchange, reason: ForwardReason, onFinalResponse?: TeeContext['onFinalResponse']): boolean {
  const tee = new TeeHandler(exchange.handler, teeContextOf(exchange, reason, onFinalResponse, undefined))
  return exchange.dispatch(exchange.dispatchOptions, tee)
}

/** Sends the request to the origin and stores the response if it may be stored. */
export function forwardAndStore(
  exchange: Exchange,
  request: KeyedRequest,
  key: string,
  reason: ForwardReason,
  onFinalResponse?: TeeContext['onFinalResponse'],
): void {
  const { options, store, flight } = exchange
  const storage = {
    request,
    key,
    store,
    shared: options.shared,
    maxEntrySize: options.maxEntrySize,
    pendingBytes: options.pendingBytes,
    rules: storageRulesOf(options, request),
    filter: options.filter,
    flight,
  }
  send(exchange, exchange.dispatchOptions, new TeeHandler(exchange.handler, teeContextOf(exchange, reason, onFinalResponse, storage)))
}

/** The context of the tee that passes this exchange's response to its caller: one literal, so one shape, whether it stores or not. */
function teeContextOf(exchange: Exchange, reason: ForwardReason, onFinalResponse: TeeContext['onFinalResponse'], storage: TeeContext['storage']): TeeContext {
  const { options, controller } = exchange
  return {
    reason,
    cacheName: options.cacheStatus,
    controller,
    callerStarted: controller !== undefined,
    onFinalResponse,
    freshHeads: exchange.freshHeads,
    storage,
    dispatchOptions: exchange.dispatchOptions,
    parameters: options.parameters,
  }
}

/**
 * Coalescing: returns the exchange to send (this request's own, or as the leader of a new flight), or
 * `undefined` when the request now waits on an identical one already sent.
 */
function coalesce(exchange: Exchange, verdict: Verdict, retry: Retry): Exchange | undefined {
  if (!isCoalescible(exchange, verdict)) return exchange
  const { request, key, variant } = verdict
  const { flights, dispatchOptions } = exchange
  const limitsTag = flights.limitsTag(dispatchOptions)
  const table = flights.tableFor(request.method, variant, limitsTag)
  const identity = flights.identityIn(table, limitsTag, request.method, key, variant)
  const inFlight = table.get(identity)
  if (inFlight !== undefined) return void waitOn(inFlight, exchange, request, retry)
  // Only misses are told apart by what their last response was: a stale entry's revalidations always coalesce.
  const isMiss = verdict.decision.action === 'forward'
  if (isMiss && table.passes(identity)) return { ...exchange, flight: new PassingMiss(table, identity) }
  const flight = table.start(identity, dispatchOptions, isMiss)
  return { ...exchange, handler: new LeaderRelay(exchange.handler, flight), flight }
}

/** Makes the request wait on `flight`; once the flight settles it runs again from the lookup, never to wait again. */
function waitOn(flight: Flight, exchange: Exchange, request: KeyedRequest, retry: Retry): void {
  flight.wait(exchange.handler, exchange.dispatchOptions, (controller, failure) => {
    // Handed the leader's failure, the waiter goes on as if its own request had met it (issue #16).
    const dispatch = failure === undefined ? exchange.dispatch : dispatchFailure(failure)
    retry({ ...exchange, dispatch, controller, mayCoalesce: false }, request)
  })
}

/**
 * Only requests that would go to the origin for the stored response everyone shares wait on each other:
 * misses and revalidations of stale entries, whose answers may be stored. A request that asked the origin
 * itself (`no-cache`, `max-age`, a conditional) is sent as it is.
 */
function isCoalescible(exchange: Exchange, { decision, mayStore }: Verdict): boolean {
  if (!exchange.options.coalesce || !exchange.mayCoalesce || !mayStore || exchange.controller !== undefined) return false
  if (decision.action === 'revalidate') return decision.reason === 'stale'
  return decision.action === 'forward' && isMiss(decision.reason)
}

/** Nothing usable was stored. */
function isMiss(reason: ForwardReason): boolean {
  return reason === 'uri-miss' || reason === 'vary-miss' || reason === 'miss'
}

/** How a response goes out from the store without asking the origin: a `hit` member, fresh or stale by its ttl. */
function servedFromStore(exchange: Exchange, request: KeyedRequest, key: string, entry: ResponseEntry): ServeContext {
  const now = Date.now()
  return {
    method: request.method,
    cacheName: exchange.options.cacheStatus,
    member: { hit: true, ttlSeconds: ttlSeconds(entry, now), key },
    now,
    controller: exchange.controller,
    request,
  }
}

/** Asks the origin about a stored response that may not be served as it is, with its validators. */
function revalidate(
  exchange: Exchange,
  { request, key, entry, reason, mayStore }: { request: KeyedRequest; key: string; entry: ResponseEntry; reason: 'stale' | 'request'; mayStore: boolean },
): void {
  const { shared, staleIfError, cacheStatus } = exchange.options
  const { headers, context } = revalidationOf(exchange, request, key, entry)
  // The closures take what they use, not the exchange: the handler keeps them for as long as undici keeps it,
  // and the exchange holds the caller's handler (see released-handler.ts).
  const { dispatch, dispatchOptions } = exchange
  const handler = new RevalidationHandler(exchange.handler, {
    ...context,
    cacheName: cacheStatus,
    reason,
    mayStore,
    countsMiss: true,
    mayServeStaleOnError: () => staleIfErrorAllows(entry, request, { shared, now: Date.now(), staleIfError }),
    sendUnconditional: (handler) => dispatch(dispatchOptions, handler),
    ...(exchange.controller ? { startedController: exchange.controller } : {}),
    ...(exchange.flight ? { flight: exchange.flight } : {}),
  })
  send(exchange, { ...exchange.dispatchOptions, headers }, handler)
}

/**
 * RFC 5861 §3: refreshes a stale entry behind the response already served from it. It asks for the
 * entry's own method (a HEAD served from a stored GET refreshes the GET), answers nobody and never
 * serves stale on error.
 */
function revalidateInBackground(exchange: Exchange, request: KeyedRequest, key: string, entry: ResponseEntry): void {
  const ownRequest: KeyedRequest = { ...request, method: entry.method }
  // It answers nobody: what it keeps of the exchange holds nothing of the caller, served already (released-handler.ts).
  const unattended: Exchange = { ...exchange, handler: RELEASED_HANDLER, controller: undefined, flight: undefined }
  const { dispatch, dispatchOptions } = exchange
  exchange.background.start(key, (discard) => {
    // Made in here, so that one that cannot be made (an unreadable policy) is a background failure, counted.
    const { headers, context } = revalidationOf(unattended, ownRequest, key, entry)
    // A body-keyed method (POST) sends its body again: it was read whole for the key, so it can be.
    const body = entry.method === 'GET' || entry.method === 'HEAD' ? null : dispatchOptions.body
    const ownOptions = { ...dispatchOptions, method: entry.method, body }
    const handler = new RevalidationHandler(discard, {
      ...context,
      cacheName: false,
      reason: 'stale',
      mayStore: true,
      mayServeStaleOnError: () => false,
      sendUnconditional: (handler) => dispatch(ownOptions, handler),
    })
    dispatch({ ...ownOptions, headers }, handler)
  })
}

/** The request headers that revalidate `entry`, and what any revalidation of it needs to know. */
function revalidationOf(exchange: Exchange, request: KeyedRequest, key: string, entry: ResponseEntry) {
  const { options, store } = exchange
  const headers = revalidationHeaders(entry, request)
  type Shared = 'entry' | 'request' | 'key' | 'store' | 'stats' | 'shared' | 'maxEntrySize' | 'pendingBytes' | 'rules' | 'filter' | 'conditional'
  const context: Pick<RevalidationContext, Shared> = {
    entry,
    request,
    key,
    store,
    stats: exchange.stats,
    shared: options.shared,
    maxEntrySize: options.maxEntrySize,
    pendingBytes: options.pendingBytes,
    rules: storageRulesOf(options, request),
    filter: options.filter,
    conditional: isValidationRequest(headers),
  }
  return { headers, context }
}

/** The user's rules on storing, for this request's URL. */
function storageRulesOf(options: ResolvedOptions, request: KeyedRequest): StorageRules {
  return { configuredTtl: options.expiryRules?.(request.storedUrl), allowedStatuses: options.allowedStatuses, staleIfError: options.staleIfError }
}

/** Dispatches; should dispatching throw, a flight this request leads is settled so that no waiter hangs. */
function send(exchange: Exchange, dispatchOptions: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
  try {
    exchange.dispatch(dispatchOptions, handler)
  } catch (error) {
    exchange.flight?.settle()
    throw error
  }
}
