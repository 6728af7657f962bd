import type { Dispatcher } from 'undici'
import { formatCacheStatus, withCacheStatus, type CacheStatusParameters } from './cache-status.js'
import { CallerController } from './controller.js'
import { toRawHeaders, type HeaderRecord } from './headers.js'
import { currentAgeSeconds, type ForwardReason } from './policy.js'
import { scheduleReplay } from './replay-scheduling.js'
import type { ResponseEntry } from './store.js'

/** Body bytes handed to the consumer at a time, so that its pause() holds back the rest. */
const CHUNK_BYTES = 64 * 1024

interface ReplayedResponse {
  status: number
  statusText: string
  headers: HeaderRecord
  /** The same headers in undici's raw form, when already at hand. */
  rawHeaders?: Buffer[]
  body: Buffer
}

/** Fields a hit writes afresh; the rest of the stored headers are served as stored. */
const REPLAY_FIELDS = new Set(['age', 'cache-status', 'content-length'])

/**
 * The raw form of an entry's stored headers other than `REPLAY_FIELDS`, built once per entry object: undici's
 * request() and fetch() read `controller.rawHeaders` on every response, and a store that keeps entries
 * as objects (MemoryStore) hands back the same object on every hit.
 */
const storedRawHeaders = new WeakMap<ResponseEntry, Buffer[]>()

function storedRawHeadersOf(entry: ResponseEntry): Buffer[] {
  let raw = storedRawHeaders.get(entry)
  if (raw === undefined) {
    const kept: HeaderRecord = {}
    for (const name in entry.headers) if (!REPLAY_FIELDS.has(name)) kept[name] = entry.headers[name]!
    raw = toRawHeaders(kept)
    storedRawHeaders.set(entry, raw)
  }
  return raw
}

/** How a stored entry is served. */
export interface ServeContext {
  /** The request's method: a HEAD gets no body. */
  method: string
  cacheName: string | false
  /** This cache's member of `Cache-Status`. */
  member: CacheStatusParameters
  now: number
  /**
   * The controller the caller already holds, when the caller was started on a request to the origin that
   * turned into a replay (a 304, or stale-if-error); the caller is then not started again.
   */
  controller?: CallerController
}

/** Serves a stored entry: its status, headers with a current `Age` and `Cache-Status`, and its body. */
export function serveEntry(entry: ResponseEntry, handler: Dispatcher.DispatchHandler, context: ServeContext): void {
  const hasBody = context.method !== 'HEAD' && entry.method !== 'HEAD'
  // The stored body is whole, so its length is known even when the origin sent it chunked; a HEAD answered
  // from a stored GET gets the length a GET would (RFC 9110 §9.3.2).
  const contentLength = entry.headers['content-length'] ?? (entry.method !== 'HEAD' ? String(entry.body.byteLength) : undefined)
  const fresh = freshFields(entry, context, contentLength === undefined ? {} : { 'content-length': contentLength })
  const body = hasBody ? Buffer.from(entry.body.buffer, entry.body.byteOffset, entry.body.byteLength) : Buffer.alloc(0)
  replay(
    handler,
    {
      status: entry.status,
      statusText: entry.statusText,
      headers: { ...entry.headers, ...fresh },
      rawHeaders: storedRawHeadersOf(entry).concat(toRawHeaders(fresh)),
      body,
    },
    context.controller,
  )
}

// RFC 9110 §15.4.5: a 304 carries the fields a 200 would have that describe caching and the validators.
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'last-modified', 'vary']

/** Answers a caller's conditional request whose validators match a fresh entry (RFC 9111 §4.3.2): a 304. */
export function serveNotModified(entry: ResponseEntry, handler: Dispatcher.DispatchHandler, context: ServeContext): void {
  const headers: HeaderRecord = {}
  for (const name of NOT_MODIFIED_FIELDS) if (entry.headers[name] !== undefined) headers[name] = entry.headers[name]
  Object.assign(headers, freshFields(entry, context, {}))
  replay(handler, { status: 304, statusText: 'Not Modified', headers, body: Buffer.alloc(0) }, context.controller)
}

/** The fields a replay writes afresh: `Age`, the given ones, and `Cache-Status` with ours after any stored members. */
function freshFields(entry: ResponseEntry, context: ServeContext, fields: HeaderRecord): HeaderRecord {
  let fresh: HeaderRecord = { age: String(Math.floor(currentAgeSeconds(entry, context.now))), ...fields }
  const storedCacheStatus = entry.headers['cache-status']
  if (storedCacheStatus !== undefined) fresh['cache-status'] = storedCacheStatus
  if (context.cacheName !== false) fresh = withCacheStatus(fresh, formatCacheStatus(context.cacheName, context.member))
  return fresh
}

/** RFC 9111 §5.2.1.7: `only-if-cached` with nothing usable stored is answered 504 Gateway Timeout. */
export function serveGatewayTimeout(
  handler: Dispatcher.DispatchHandler,
  context: { reason: ForwardReason; cacheName: string | false; controller?: CallerController },
): void {
  let headers: HeaderRecord = { 'content-length': '0' }
  if (context.cacheName !== false) headers = withCacheStatus(headers, formatCacheStatus(context.cacheName, { fwd: context.reason }))
  replay(handler, { status: 504, statusText: 'Gateway Timeout', headers, body: Buffer.alloc(0) }, context.controller)
}

/**
 * Plays a response into a handler as undici would: start, headers, body in chunks honouring pause() and
 * resume(), end. Starts after `dispatch()` has returned, like a real response (see replay-scheduling.ts).
 * An abort or a throwing callback ends it with onResponseError, once. Given the controller of a caller
 * already started, it goes on from there.
 */
function replay(handler: Dispatcher.DispatchHandler, response: ReplayedResponse, startedController?: CallerController): void {
  const controller = startedController ?? new CallerController()
  let finished = false
  let waitingForResume = false
  let offset = 0
  const fail = (error: unknown): void => {
    if (finished) return
    finished = true
    handler.onResponseError?.(controller, error instanceof Error ? error : new Error(String(error)))
  }
  const writeBody = (): void => {
    try {
      while (!finished && !controller.aborted) {
        if (controller.paused) {
          waitingForResume = true
          return
        }
        if (offset >= response.body.byteLength) {
          finished = true
          handler.onResponseEnd?.(controller, {})
          return
        }
        const chunk = response.body.subarray(offset, offset + CHUNK_BYTES)
        offset += chunk.byteLength
        handler.onResponseData?.(controller, chunk)
      }
    } catch (error) {
      fail(error)
    }
  }
  controller.switchTo({
    pause() {},
    resume() {
      if (!waitingForResume) return
      waitingForResume = false
      writeBody()
    },
    abort: (reason) => queueMicrotask(() => fail(reason)),
  })
  scheduleReplay(() => {
    try {
      if (startedController === undefined) handler.onRequestStart?.(controller, {})
      if (controller.aborted) return
      controller.setHeaders(response.headers, response.rawHeaders)
      handler.onResponseStart?.(controller, response.status, response.headers, response.statusText)
    } catch (error) {
      return fail(error)
    }
    writeBody()
  })
}
