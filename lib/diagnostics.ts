/**
 * What the cache publishes on `node:diagnostics_channel` (issue #19), for metrics, traces and logs:
 * - `undici-http-cache:response`: a response handed to a caller (`ResponseMessage`);
 * - `undici-http-cache:store`: a response written to the store (`StoreMessage`);
 * - `undici-http-cache:error`: a store call that failed, timed out or returned what is not an entry, or a
 *   key function or filter that threw (`ErrorMessage`).
 * A message is built only when the channel has subscribers, so that nobody listening costs a property
 * read per event. Messages are plain objects that never hold a body or a credential: URLs and headers are
 * those stored, where a redacted parameter's value is its digest and an ignored one is left out. A
 * subscriber that throws does not fail the request nor stop the other subscribers: Node reports its
 * error on `process`'s `uncaughtException`, as for any channel.
 */
import diagnosticsChannel from 'node:diagnostics_channel'
import { debuglog } from 'node:util'
import type { Dispatcher } from 'undici'
import { redactHeaders, type ParameterRules } from './keys/redaction.js'
import { normalizeParameters } from './keys/request-body.js'
import { originOf } from './keys/urls.js'
import { statusOf, type CacheStatus, type CacheStatusParameters } from './rules/cache-status.js'
import { normalizeRequestHeaders } from './rules/headers.js'
import { entrySize, type RequestHeaders, type ResponseEntry } from './stores/store.js'

export const responseChannel = diagnosticsChannel.channel('undici-http-cache:response')
export const storeChannel = diagnosticsChannel.channel('undici-http-cache:store')
export const errorChannel = diagnosticsChannel.channel('undici-http-cache:error')
/**
 * `undici-http-cache:request`, a tracing channel (`tracing:undici-http-cache:request:start`, `:end`,
 * `:asyncStart`, `:asyncEnd`, `:error`) around the whole handling of each request, hit or not: `start`
 * and `end` around `dispatch()` (`start` runs the stores bound to it, so a span made there is the parent
 * of what the dispatch does), then `asyncStart` and `asyncEnd` around the caller's last callback, once the
 * response has ended, or failed (`error` first). Every event of one request carries the same `RequestTrace`.
 */
export const requestTracing = diagnosticsChannel.tracingChannel<unknown, RequestTrace>('undici-http-cache:request')

/** The object every event of one request's trace carries; filled in as the request goes. */
export interface RequestTrace {
  /** The request, credentials redacted as in every message. */
  request: RequestSummary
  /** From the response's head: what the cache did, as `cacheInfo().status` reads it (not with `cacheStatus: false`). */
  status?: CacheStatus | undefined
  /** From the response's head: its `Cache-Status` field. */
  cacheStatus?: string | undefined
  /** From the response's head: its status code. */
  statusCode?: number
  /** Set when the response failed (`error` event). */
  error?: Error
}

/** The request a message is about, as the cache stores it: credentials as digests, ignored parameters left out. */
export interface RequestSummary {
  /** Upper-case method. */
  method: string
  /** Scheme, host and port: `https://example.com`. */
  origin: string
  /** Path and query, normalised as stored. */
  path: string
  /** Lower-case names; redacted values as digests. */
  headers: RequestHeaders
}

/** `undici-http-cache:response`: the cache handed a response to a caller. */
export interface ResponseMessage {
  request: RequestSummary
  /** The key the response was served from or stored under, when there is one. */
  key: string | undefined
  /** What the cache did, as `cacheInfo().status` reads it. */
  status: CacheStatus
  /** The `Cache-Status` field the caller gets (`undefined` with `cacheStatus: false`). */
  cacheStatus: string | undefined
  /** The response's status code. */
  statusCode: number
  /** Whether the response is being stored (it is stored once its body is whole and intact). */
  stored: boolean
}

/** `undici-http-cache:store`: a response was written to the store. */
export interface StoreMessage {
  request: RequestSummary
  key: string
  /** The normalised URL the response answered. */
  url: string
  /** What the entry counts against a store's size bound (`entrySize`), in bytes. */
  size: number
}

/** `undici-http-cache:error`: a failure the cache absorbed; the request went on as without a cache. */
export interface ErrorMessage {
  /**
   * The request, when the failure was its own: a key function or a filter that threw as it was handled.
   * A store call names its key instead (`key`): the cache calls its store by key.
   */
  request: RequestSummary | undefined
  /** What failed: `'get'`, `'set'`, `'delete'`, `'write'`, `'decode'` (not an entry), `'body'` (a damaged body), `'key'`, `'filter'`, … */
  operation: string
  error: Error
  /** The key of the store call that failed, when there was one. */
  key: string | undefined
}

/** A request summarised from the normalised URL and stored headers it is known by. */
export function summarizeRequest(method: string, storedUrl: string, storedHeaders: RequestHeaders): RequestSummary {
  const pathAt = storedUrl.indexOf('/', storedUrl.indexOf('//') + 2)
  return {
    method,
    origin: pathAt === -1 ? storedUrl : storedUrl.slice(0, pathAt),
    path: pathAt === -1 ? '/' : storedUrl.slice(pathAt),
    headers: { ...storedHeaders },
  }
}

/**
 * A request the cache did not key (a bypass), summarised from undici's dispatch options with the cache's
 * rules applied as they would be to a stored one: redacted values as digests, ignored ones left out.
 */
export function summarizeDispatch(options: Dispatcher.DispatchOptions, rules: ParameterRules): RequestSummary {
  // A fragment is no part of what is sent, and one after a query would read as part of its last value.
  const fragmentAt = (options.path ?? '/').indexOf('#')
  const path = fragmentAt === -1 ? (options.path ?? '/') : options.path.slice(0, fragmentAt)
  const queryAt = path.indexOf('?')
  const query = queryAt === -1 ? '' : normalizeParameters(path.slice(queryAt + 1), rules)
  return {
    method: (options.method ?? 'GET').toUpperCase(),
    // The serialised origin: a user name and password written in `origin` are credentials, left out.
    origin: options.origin == null ? '' : originOf(String(options.origin)),
    path: queryAt === -1 ? path : query === '' ? path.slice(0, queryAt) : `${path.slice(0, queryAt + 1)}${query}`,
    headers: { ...redactHeaders(normalizeRequestHeaders(options.headers), rules) },
  }
}

/** Publishes a response handed to a caller (call only when `responseChannel.hasSubscribers`). */
export function publishResponse(response: {
  request: RequestSummary
  key: string | undefined
  statusCode: number
  /** The parameters of this cache's member of `Cache-Status`: what the cache did. */
  member: CacheStatusParameters
  cacheStatus: string | string[] | undefined
  stored: boolean
}): void {
  const message: ResponseMessage = {
    request: response.request,
    key: response.key,
    status: statusOf(response.member),
    cacheStatus: Array.isArray(response.cacheStatus) ? response.cacheStatus.join(', ') : response.cacheStatus,
    statusCode: response.statusCode,
    stored: response.stored,
  }
  responseChannel.publish(message)
}

/** Publishes a response written to the store under `key` (call only when `storeChannel.hasSubscribers`). */
export function publishStored(key: string, entry: ResponseEntry): void {
  const message: StoreMessage = { request: summarizeRequest(entry.method, entry.url, entry.requestHeaders), key, url: entry.url, size: entrySize(entry) }
  storeChannel.publish(message)
}

/** Publishes a failure the cache absorbed (call only when `errorChannel.hasSubscribers`). */
export function publishError(operation: string, error: unknown, key: string | undefined, request?: () => RequestSummary | undefined): void {
  const message: ErrorMessage = { request: request?.(), operation, error: error instanceof Error ? error : new Error(String(error)), key }
  errorChannel.publish(message)
}

/**
 * `NODE_DEBUG=undici-http-cache`: a line for each response handed to a caller and each response stored.
 * Failures are logged by the guard, once per kind (a store that is down would otherwise write a line per
 * request); `undici-http-cache:error` has every one.
 */
const debug = debuglog('undici-http-cache')
if (debug.enabled) {
  responseChannel.subscribe((message) => {
    const { request, status, statusCode, stored, key } = message as ResponseMessage
    debug('%s %s%s: %s, %d%s%s', request.method, request.origin, request.path, status, statusCode, stored ? ', stored' : '', key === undefined ? '' : ` (key ${key})`)
  })
  storeChannel.subscribe((message) => {
    const { url, size, key } = message as StoreMessage
    debug('stored %s, %d bytes (key %s)', url, size, key)
  })
}

