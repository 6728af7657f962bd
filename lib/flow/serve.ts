import type { Dispatcher } from 'undici'
import { bodyChunks, bodyLength, inReplayChunks, joinBody, REPLAY_CHUNK_BYTES } from '../stores/body.js'
import { appendCacheStatus, formatCacheStatus, ttlParameter, withCacheStatus, type CacheStatusParameters } from '../rules/cache-status.js'
import { CallerController, type ResponseSource } from './controller.js'
import { publishResponse, responseChannel, summarizeRequest } from '../diagnostics.js'
import type { HeaderRecord, RequestHeaders } from '../rules/headers.js'
import { keptRawHeaders } from './kept-raw-headers.js'
import { currentAgeSeconds } from '../rules/policy.js'
import { RELEASED_HANDLER } from './released-handler.js'
import { scheduleReplay } from './replay-scheduling.js'
import type { ResponseEntry } from '../stores/store.js'

interface ReplayedResponse {
  status: number
  statusText: string
  headers: HeaderRecord
  /** The same headers in undici's raw form, when already at hand. */
  rawHeaders?: Buffer[]
  /** The body's chunks, in order. */
  body: readonly Uint8Array[]
}

const NO_BODY: readonly Uint8Array[] = []

/** Fields a hit writes afresh; the rest of the stored headers are served as stored. */
const REPLAY_FIELDS = new Set(['age', 'cache-status', 'content-length'])

/** Fields written afresh, and the same in undici's raw form. */
interface FreshFields {
  fields: HeaderRecord
  raw: Buffer[]
}

/** A replay's headers, and the same in undici's raw form. */
interface ReplayHeaders {
  headers: HeaderRecord
  raw: Buffer[]
}

/**
 * What serving an entry needs besides the entry, kept per entry object, as a store that keeps entries as
 * objects (MemoryStore) hands back the same object on every hit: the raw form of its headers (undici's
 * request() and fetch() read `controller.rawHeaders` on every response), and the headers of its last hit.
 * Those change only when the whole seconds of its Age or its ttl do, so most hits in a row reuse them:
 * building their fresh fields (a Cache-Status string, three Buffers) was ~10% of a 1 KiB hit through
 * request() (A/B, 12 alternating rounds: 11.2 -> 10.0 us, the floor 9.3). The raw form is kept as long as
 * the entry, so it is built outside Node's Buffer pool (kept-raw-headers.ts).
 */
interface ServedForm {
  /**
   * The stored fields other than `REPLAY_FIELDS` in raw form (its first `storedCount` items), followed,
   * once the entry has had a hit, by that hit's fresh fields: the raw headers of its last hit, whole.
   */
  raw: Buffer[]
  storedCount: number
  /** The body's chunks as a hit replays them, once worked out (see replayChunks). */
  chunks: readonly Uint8Array[] | undefined
  /** The last hit's headers, whole, and what they were built for. */
  lastHit: (ReplayHeaders & { age: number; ttl: number; key: string; cacheName: string | false }) | undefined
}

const servedForms = new WeakMap<ResponseEntry, ServedForm>()

function servedFormOf(entry: ResponseEntry): ServedForm {
  let form = servedForms.get(entry)
  if (form === undefined) {
    const kept: HeaderRecord = {}
    for (const name in entry.headers) if (!REPLAY_FIELDS.has(name)) kept[name] = entry.headers[name]!
    const raw = keptRawHeaders(kept)
    form = { raw, storedCount: raw.length, chunks: undefined, lastHit: undefined }
    servedForms.set(entry, form)
  }
  return form
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
  /** The request served, as stored (for the `undici-http-cache:response` channel). */
  request?: ServedRequest
}

/** A request as the cache stores it: what a message about its response names. */
export interface ServedRequest {
  method: string
  storedUrl: string
  storedHeaders: RequestHeaders
}

/** Publishes on `undici-http-cache:response` what a caller is handed from the store, if anyone listens. */
function reportServed(context: ServeContext, statusCode: number, cacheStatus: string | string[] | undefined): void {
  const { request, member } = context
  if (!responseChannel.hasSubscribers || request === undefined) return
  publishResponse({
    request: summarizeRequest(request.method, request.storedUrl, request.storedHeaders),
    key: 'key' in member ? member.key : undefined,
    statusCode,
    member,
    cacheStatus,
    stored: 'stored' in member && member.stored === true,
  })
}

/** Serves a stored entry: its status, headers with a current `Age` and `Cache-Status`, and its body. */
export function serveEntry(entry: ResponseEntry, handler: Dispatcher.DispatchHandler, context: ServeContext): void {
  const hasBody = context.method !== 'HEAD' && entry.method !== 'HEAD'
  const form = servedFormOf(entry)
  const { headers, raw } = replayHeadersFor(entry, form, context)
  const body = hasBody ? (form.chunks ??= replayChunks(entry)) : NO_BODY
  // Copies for each replay: a handler may change what it is given (undici's decompress interceptor splices
  // rawHeaders), and the next hit must not see it. One spread and one slice of whole forms cost ~30 ns
  // where merging the stored and fresh fields cost ~140 ns (a spread of each, a concat).
  reportServed(context, entry.status, headers['cache-status'])
  replay(handler, { status: entry.status, statusText: entry.statusText, headers: { ...headers }, rawHeaders: raw.slice(), body }, context.controller)
}

/** The headers a replay of `entry` gives, whole: the last hit's, while its Age and ttl still hold. */
function replayHeadersFor(entry: ResponseEntry, form: ServedForm, context: ServeContext): ReplayHeaders {
  const { member, cacheName } = context
  // Answers after a revalidation (a 304, stale-if-error) are built each time: they are not hits.
  if (!('hit' in member)) return withStoredFields(entry, form, replayFields(entry, context))
  const age = wholeAgeSeconds(entry, context.now)
  const ttl = ttlParameter(member.ttlSeconds)
  const last = form.lastHit
  if (last !== undefined && last.age === age && last.ttl === ttl && last.key === member.key && last.cacheName === cacheName) return last
  const { headers, raw } = withStoredFields(entry, form, replayFields(entry, context))
  form.raw = raw
  form.lastHit = { headers, raw, age, ttl, key: member.key, cacheName }
  return form.lastHit
}

/** A replay's headers, whole: the entry's stored fields, then `fresh`. */
function withStoredFields(entry: ResponseEntry, form: ServedForm, fresh: FreshFields): ReplayHeaders {
  const raw = form.raw.slice(0, form.storedCount)
  for (const item of fresh.raw) raw.push(item)
  return { headers: { ...entry.headers, ...fresh.fields }, raw }
}

/** A replay's fresh fields, built anew; Content-Length is the stored body's length when the origin gave none. */
function replayFields(entry: ResponseEntry, context: ServeContext): FreshFields {
  // The stored body is whole, so its length is known even when the origin sent it chunked; a HEAD answered
  // from a stored GET gets the length a GET would (RFC 9110 §9.3.2).
  const contentLength = entry.headers['content-length'] ?? (entry.method !== 'HEAD' ? String(bodyLength(entry.body)) : undefined)
  const fields = freshFields(entry, context, contentLength)
  return { fields, raw: keptRawHeaders(fields) }
}

/** The `Age` a replay of `entry` carries at `now`, in whole seconds. */
function wholeAgeSeconds(entry: ResponseEntry, now: number): number {
  return Math.floor(currentAgeSeconds(entry, now))
}

/**
 * The chunks hits replay. A body stored as the chunks it arrived in (only a store that accepts chunks,
 * `acceptsBodyChunks`, holds such bodies) is copied on its first hit, and the entry keeps the copy in their
 * place: a body one replay chunk holds, into one buffer (a second chunk cost each fetch() hit ~8% at
 * 64 KiB, measured); a larger one, into chunks of `REPLAY_CHUNK_BYTES` each, handed on as they are (a
 * 1 MiB body from a socket came in ~21 chunks of uneven size, each a call into the consumer and, through
 * fetch(), a pause and a resume; 16 made fetch() hits with 64 in flight ~10% cheaper in CPU, measured).
 * A response that is never asked for again is never copied, and the copy holds the bytes it replaces.
 */
function replayChunks(entry: ResponseEntry): readonly Uint8Array[] {
  const body = entry.body
  if (Array.isArray(body) && body.length > 1 && bodyLength(body) <= REPLAY_CHUNK_BYTES) entry.body = joinBody(body)
  else if (Array.isArray(body)) entry.body = inReplayChunks(body)
  return bodyChunks(entry.body)
}

// RFC 9110 §15.4.5: a 304 carries the fields a 200 would have that describe caching and the validators.
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'last-modified', 'vary']

/** Answers a caller's conditional request whose validators match a fresh entry (RFC 9111 §4.3.2): a 304. */
export function serveNotModified(entry: ResponseEntry, handler: Dispatcher.DispatchHandler, context: ServeContext): void {
  const headers: HeaderRecord = {}
  for (const name of NOT_MODIFIED_FIELDS) if (entry.headers[name] !== undefined) headers[name] = entry.headers[name]
  Object.assign(headers, freshFields(entry, context, undefined))
  reportServed(context, 304, headers['cache-status'])
  replay(handler, { status: 304, statusText: 'Not Modified', headers, body: NO_BODY }, context.controller)
}

/**
 * The fields a replay writes afresh: `Age`, `Content-Length` when given, and `Cache-Status` with ours after
 * any stored members. Built as one object, in one order: this runs on every hit.
 */
function freshFields(entry: ResponseEntry, context: ServeContext, contentLength: string | string[] | undefined): HeaderRecord {
  const fresh: HeaderRecord = { age: String(wholeAgeSeconds(entry, context.now)) }
  if (contentLength !== undefined) fresh['content-length'] = contentLength
  const stored = entry.headers['cache-status']
  if (context.cacheName !== false) fresh['cache-status'] = appendCacheStatus(stored, formatCacheStatus(context.cacheName, context.member))
  else if (stored !== undefined) fresh['cache-status'] = stored
  return fresh
}

/**
 * RFC 9111 §5.2.1.7: `only-if-cached` with nothing usable stored is answered 504 Gateway Timeout. Nothing
 * went forward, so its `Cache-Status` has no `fwd` (RFC 9211 §2.2), only `detail=only-if-cached`.
 */
export function serveGatewayTimeout(
  handler: Dispatcher.DispatchHandler,
  context: { cacheName: string | false; controller?: CallerController; request?: ServedRequest },
): void {
  let headers: HeaderRecord = { 'content-length': '0' }
  const member: CacheStatusParameters = { detail: 'only-if-cached' }
  if (context.cacheName !== false) headers = withCacheStatus(headers, formatCacheStatus(context.cacheName, member))
  if (responseChannel.hasSubscribers) reportServed({ ...context, method: 'GET', member, now: 0 }, 504, headers['cache-status'])
  replay(handler, { status: 504, statusText: 'Gateway Timeout', headers, body: NO_BODY }, context.controller)
}

/**
 * Plays a response into a handler as undici would: start, headers, body in chunks honouring pause() and
 * resume(), end. Starts after `dispatch()` has returned, like a real response (see replay-scheduling.ts).
 * An abort or a throwing callback ends it with onResponseError, once. Given the controller of a caller
 * already started, it goes on from there.
 */
function replay(handler: Dispatcher.DispatchHandler, response: ReplayedResponse, startedController?: CallerController): void {
  new Replay(handler, response, startedController)
}

/** One response played from memory; the source its caller's controller acts on (resume, abort). */
class Replay implements ResponseSource {
  /** The caller's handler; RELEASED_HANDLER once it has had its end or error (the caller's controller leads here). */
  #handler: Dispatcher.DispatchHandler
  readonly #response: ReplayedResponse
  readonly #controller: CallerController
  #finished = false
  #waitingForResume = false
  /** Where the body stands: the chunk being written, and how far into it. */
  #chunkIndex = 0
  #offset = 0

  constructor(handler: Dispatcher.DispatchHandler, response: ReplayedResponse, startedController: CallerController | undefined) {
    this.#handler = handler
    this.#response = response
    this.#controller = startedController ?? new CallerController()
    this.#controller.switchTo(this)
    scheduleReplay(() => this.#start(startedController === undefined))
  }

  pause(): void {} // the body stops at the next chunk: writeBody checks controller.paused

  resume(): void {
    if (!this.#waitingForResume) return
    this.#waitingForResume = false
    this.#writeBody()
  }

  abort(reason: Error): void {
    queueMicrotask(() => this.#fail(reason))
  }

  #start(startCaller: boolean): void {
    const { status, statusText, headers, rawHeaders } = this.#response
    try {
      if (startCaller) this.#handler.onRequestStart?.(this.#controller, {})
      if (this.#controller.aborted) return
      this.#controller.setHeaders(headers, rawHeaders)
      this.#handler.onResponseStart?.(this.#controller, status, headers, statusText)
    } catch (error) {
      return this.#fail(error)
    }
    this.#writeBody()
  }

  #writeBody(): void {
    const body = this.#response.body
    try {
      while (!this.#finished && !this.#controller.aborted) {
        if (this.#controller.paused) {
          this.#waitingForResume = true
          return
        }
        const stored = body[this.#chunkIndex]
        if (stored === undefined) {
          this.#finished = true
          this.#handler.onResponseEnd?.(this.#controller, {})
          this.#handler = RELEASED_HANDLER
          return
        }
        const chunk = replayedPart(stored, this.#offset)
        this.#offset += chunk.byteLength
        if (this.#offset >= stored.byteLength) {
          this.#chunkIndex++
          this.#offset = 0
        }
        if (chunk.byteLength > 0) this.#handler.onResponseData?.(this.#controller, chunk)
      }
    } catch (error) {
      this.#fail(error)
    }
  }

  #fail(error: unknown): void {
    if (this.#finished) return
    this.#finished = true
    this.#handler.onResponseError?.(this.#controller, error instanceof Error ? error : new Error(String(error)))
    this.#handler = RELEASED_HANDLER
  }
}

/**
 * The part of a stored chunk a replay hands on from `offset`: at most `REPLAY_CHUNK_BYTES`. A chunk that
 * fits whole goes as it is, with no view made of it on every hit (as most do: bodies up to 64 KiB, and
 * larger ones kept in the chunks they arrived in). A view shares the stored bytes either way.
 */
function replayedPart(stored: Uint8Array, offset: number): Buffer {
  const bytes = asBuffer(stored)
  return offset === 0 && bytes.byteLength <= REPLAY_CHUNK_BYTES ? bytes : bytes.subarray(offset, offset + REPLAY_CHUNK_BYTES)
}

/** undici hands handlers Buffers; a store may return plain Uint8Arrays. A view either way, not a copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
