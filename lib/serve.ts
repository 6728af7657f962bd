import type { Dispatcher } from 'undici'
import { formatCacheStatus, withCacheStatus } from './cache-status.js'
import { ReplayController } from './controller.js'
import { toRawHeaders, type HeaderRecord } from './headers.js'
import { currentAgeSeconds, ttlSeconds, type ForwardReason } from './policy.js'
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

/** Serves a stored entry: its status, headers with a current `Age` and `Cache-Status`, and its body. */
export function serveEntry(
  entry: ResponseEntry,
  handler: Dispatcher.DispatchHandler,
  context: { status: 'hit' | 'stale'; key: string; method: string; cacheName: string | false; now: number },
): void {
  const hasBody = context.method !== 'HEAD' && entry.method !== 'HEAD'
  let fresh: HeaderRecord = { age: String(Math.floor(currentAgeSeconds(entry, context.now))) }
  // The body is replayed whole, so its length is known even when the origin sent it chunked.
  const contentLength = entry.headers['content-length'] ?? (hasBody ? String(entry.body.byteLength) : undefined)
  if (contentLength !== undefined) fresh['content-length'] = contentLength
  // Members written by caches nearer the origin stay, in front of ours.
  const storedCacheStatus = entry.headers['cache-status']
  if (storedCacheStatus !== undefined) fresh['cache-status'] = storedCacheStatus
  if (context.cacheName !== false) {
    fresh = withCacheStatus(fresh, formatCacheStatus(context.cacheName, { hit: true, ttlSeconds: ttlSeconds(entry, context.now), key: context.key }))
  }
  const body = hasBody ? Buffer.from(entry.body.buffer, entry.body.byteOffset, entry.body.byteLength) : Buffer.alloc(0)
  replay(handler, {
    status: entry.status,
    statusText: entry.statusText,
    headers: { ...entry.headers, ...fresh },
    rawHeaders: storedRawHeadersOf(entry).concat(toRawHeaders(fresh)),
    body,
  })
}

/** RFC 9111 §5.2.1.7: `only-if-cached` with nothing usable stored is answered 504 Gateway Timeout. */
export function serveGatewayTimeout(
  handler: Dispatcher.DispatchHandler,
  context: { reason: ForwardReason; cacheName: string | false },
): void {
  let headers: HeaderRecord = { 'content-length': '0' }
  if (context.cacheName !== false) headers = withCacheStatus(headers, formatCacheStatus(context.cacheName, { fwd: context.reason }))
  replay(handler, { status: 504, statusText: 'Gateway Timeout', headers, body: Buffer.alloc(0) })
}

/**
 * Plays a response into a handler as undici would: start, headers, body in chunks honouring pause() and
 * resume(), end. Starts on a microtask so that `dispatch()` has returned first, like a real response.
 * An abort or a throwing callback ends it with onResponseError, once.
 */
function replay(handler: Dispatcher.DispatchHandler, response: ReplayedResponse): void {
  let finished = false
  let offset = 0
  const fail = (error: unknown): void => {
    if (finished) return
    finished = true
    handler.onResponseError?.(controller, error instanceof Error ? error : new Error(String(error)))
  }
  const controller = new ReplayController((reason) => queueMicrotask(() => fail(reason)))
  const writeBody = (): void => {
    try {
      while (!finished && !controller.aborted) {
        if (controller.paused) return controller.whenResumed(writeBody)
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
  queueMicrotask(() => {
    try {
      handler.onRequestStart?.(controller, {})
      if (controller.aborted) return
      controller.setHeaders(response.headers, response.rawHeaders)
      handler.onResponseStart?.(controller, response.status, response.headers, response.statusText)
    } catch (error) {
      return fail(error)
    }
    writeBody()
  })
}
