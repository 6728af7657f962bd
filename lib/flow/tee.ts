import type { Dispatcher } from 'undici'
import { joinChunks, type ResponseBody } from '../stores/body.js'
import { appendCacheStatus, formatCacheStatus, notStoredMember, withCacheStatus } from '../rules/cache-status.js'
import { CallerController } from './controller.js'
import { publishResponse, responseChannel, summarizeDispatch, summarizeRequest, type RequestSummary } from '../diagnostics.js'
import { stampGeneration } from '../keys/credential-generations.js'
import type { GuardedStore } from '../stores/guarded-store.js'
import { contentLength, withoutFields, withoutHopByHop, type HeaderRecord } from '../rules/headers.js'
import type { FlightReport } from './coalescing.js'
import type { KeyedRequest } from '../keys/key.js'
import type { ParameterRules } from '../keys/redaction.js'
import { filterAllows, type ResponseFilter } from '../keys/filter.js'
import { pickHeaders } from '../rules/directives.js'
import { evaluateResponse, policyRequestOf, type ForwardReason, type StorageRules } from '../rules/policy.js'
import { bodySize, ENTRY_VERSION, entrySize, type ResponseEntry } from '../stores/store.js'
import { andThen } from '../stores/maybe-promise.js'
import type { PendingBytes } from './pending-bytes.js'
import { staleIfErrorRetention } from '../rules/retention.js'
import { forget, save } from '../keys/variants.js'
import { RELEASED_HANDLER } from './released-handler.js'

export interface TeeContext {
  /** Why the request went to the origin, for `Cache-Status`. */
  reason: ForwardReason
  cacheName: string | false
  /** Where a storable response goes; absent when this response must not be stored whatever it says. */
  storage?: {
    request: KeyedRequest
    key: string
    store: GuardedStore
    shared: boolean
    maxEntrySize: number
    /** What all responses on their way to the store may hold together. */
    pendingBytes: PendingBytes
    /** The user's rules on what is stored and for how long. */
    rules: StorageRules
    /** The user's filter, asked once the body is whole. */
    filter: ResponseFilter | undefined
    /**
     * The response replaces one stored under `key` (it answers a revalidation): when it is not stored,
     * the stored one is deleted, unless the response is a server error (RFC 9111 §4.3.3 keeps it then).
     */
    replaces?: boolean
    /**
     * The flight this request leads, if any (or what a miss that passes reports to): told at the final
     * response's head whether it is being copied for the store, and settled once, when what this response
     * leaves in the store is final: stored (after the store took it), or known not to be stored (not
     * storable, too large, cut short, failed). Coalesced requests waiting on this one look the store up
     * again then; `failure` is why the request failed, if it did.
     */
    flight?: FlightReport | undefined
  }
  /**
   * The controller the caller is to be given, when the caller of this exchange already made one; it is
   * pointed at the origin's response when that starts.
   */
  controller?: CallerController
  /** The caller was started already (given `controller`): it is not started again. */
  callerStarted?: boolean
  /** Called with the final response's status and headers as they arrive, before the caller sees them. */
  onFinalResponse?: (statusCode: number, headers: HeaderRecord) => void
  /**
   * The response heads that come from below are undici's own, made afresh for each response (the `Agent`
   * that `CachingAgent` makes): `Cache-Status` is added to them in place, and a caller not started before is
   * handed undici's own controller. Otherwise heads are copied and the caller gets a controller of the cache's.
   */
  freshHeads?: boolean
  /**
   * The request as sent and the cache's parameter rules, for the `undici-http-cache:response` channel's
   * summary of a request that is not being stored (without `storage`, the request was not keyed).
   */
  dispatchOptions?: Dispatcher.DispatchOptions
  parameters?: ParameterRules
}

const CACHE_STATUS_NAME = Buffer.from('cache-status')

/** A response being copied for the store. */
interface PendingEntry {
  entry: ResponseEntry
  chunks: Buffer[]
  bytes: number
  maxBodyBytes: number
  /** The body's length as the origin declared it (0 for HEAD), if it did. */
  declaredLength: number | undefined
  /** Bytes taken from `pendingBytes` for this response: its declared length, or what came so far. */
  taken: number
}

/** What an entry holds until its body is whole: read by nobody, written to by nobody. */
const NO_BODY_YET = new Uint8Array(0)

/**
 * Passes a response from the origin through to the caller as it arrives, adding `Cache-Status`, and keeps
 * a copy of a storable one, which it stores once the whole body has arrived intact. It never holds more
 * than `maxEntrySize` bytes: past that it stops copying and the response just passes through.
 */
export class TeeHandler implements Dispatcher.DispatchHandler {
  /** The caller's handler; RELEASED_HANDLER once it has had its response's end or error. */
  #handler: Dispatcher.DispatchHandler
  readonly #context: TeeContext
  #controller: CallerController | undefined
  /** The caller is handed the controllers from below as they are (see TeeContext.freshHeads). */
  readonly #direct: boolean
  /** The entry being filled, or undefined when this response is not being stored. */
  #pending: PendingEntry | undefined
  #settled = false
  /** When the request was sent (this handler is made as it is dispatched): RFC 9111 §4.2.3's request_time. */
  readonly #requestTime = Date.now()

  constructor(handler: Dispatcher.DispatchHandler, context: TeeContext) {
    this.#handler = handler
    this.#context = context
    this.#controller = context.controller
    this.#direct = context.freshHeads === true && context.controller === undefined
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    if (this.#direct) return void this.#handler.onRequestStart?.(controller, context)
    const wrapped = this.#wrap(controller)
    if (this.#context.controller) wrapped.switchTo(controller)
    if (!this.#context.callerStarted) this.#handler.onRequestStart?.(wrapped, context)
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, socket: never): void {
    this.#handler.onRequestUpgrade?.(this.#callerController(controller), statusCode, headers, socket)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderRecord, statusText?: string): void {
    const caller = this.#callerController(controller)
    // 1xx responses are interim: they pass through untouched and the final response follows.
    if (statusCode < 200) return this.#handler.onResponseStart?.(caller, statusCode, headers, statusText)
    this.#context.onFinalResponse?.(statusCode, headers)
    this.#pending = this.#startEntry(statusCode, headers, statusText ?? '')
    this.#context.storage?.flight?.storable(this.#pending !== undefined)
    if (this.#pending === undefined) {
      if (statusCode < 500) this.#deleteReplaced()
      this.#settle()
    }
    if (this.#direct) {
      if (this.#context.cacheName !== false) addInPlace(controller, headers, this.#memberFor(this.#context.cacheName, this.#pending?.entry))
      if (responseChannel.hasSubscribers) this.#report(statusCode, headers['cache-status'])
      return this.#handler.onResponseStart?.(controller, statusCode, headers, statusText)
    }
    const wrapped = caller as CallerController
    // undici's clients read the raw form too: the origin's, when undici has it, rather than built again.
    const upstreamRaw = Array.isArray(controller.rawHeaders) ? (controller.rawHeaders as Buffer[]) : undefined
    let headersOut = headers
    let rawOut = upstreamRaw
    if (this.#context.cacheName !== false) {
      const member = this.#memberFor(this.#context.cacheName, this.#pending?.entry)
      headersOut = withCacheStatus(headers, member.text)
      // Appended to the origin's raw form when it has no Cache-Status; otherwise built from the record, which
      // joins the members into one field (undici 7's request() would make an array of two field lines).
      rawOut = headers['cache-status'] === undefined ? upstreamRaw?.concat(CACHE_STATUS_NAME, member.raw ?? Buffer.from(member.text, 'latin1')) : undefined
    }
    wrapped.setHeaders(headersOut, rawOut)
    if (responseChannel.hasSubscribers) this.#report(statusCode, headersOut['cache-status'])
    this.#handler.onResponseStart?.(wrapped, statusCode, headersOut, statusText)
  }

  /** Publishes on `undici-http-cache:response` the final response's head as the caller gets it. */
  #report(statusCode: number, cacheStatus: string | string[] | undefined): void {
    const { storage, dispatchOptions, parameters } = this.#context
    const entry = this.#pending?.entry
    let request: RequestSummary
    if (storage !== undefined) request = summarizeRequest(storage.request.method, storage.request.storedUrl, storage.request.storedHeaders)
    else if (dispatchOptions !== undefined && parameters !== undefined) request = summarizeDispatch(dispatchOptions, parameters)
    else return // every tee made by the cache has one or the other
    publishResponse({
      request,
      key: entry === undefined ? undefined : storage?.key,
      statusCode,
      member: { fwd: this.#context.reason, stored: entry !== undefined },
      cacheStatus,
      stored: entry !== undefined,
    })
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const pending = this.#pending
    if (pending) {
      pending.bytes += chunk.byteLength
      if (pending.bytes > pending.maxBodyBytes || !this.#takeFor(pending)) {
        this.#stopCopying() // too large to store, or no room left for it on the way: stop copying
        this.#deleteReplaced()
        this.#settle()
      } else pending.chunks.push(chunk)
    }
    this.#handler.onResponseData?.(this.#callerController(controller), chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: HeaderRecord): void {
    const pending = this.#pending
    this.#pending = undefined
    const storage = this.#context.storage
    // A body shorter or longer than its Content-Length is truncated or corrupt, and must not be stored.
    if (pending && storage && (pending.declaredLength === undefined || pending.declaredLength === pending.bytes)) {
      pending.entry.body = retainedBody(pending.chunks, pending.bytes, { maxBodyBytes: pending.maxBodyBytes, keepsChunks: storage.store.acceptsBodyChunks })
      if (filterAllows(storage.filter, storage.request, pending.entry, storage.store)) {
        // Its bytes count until the store has them: a slow store cannot gather bodies past the bound.
        const stamped = stampGeneration(storage.store, storage.request, pending.entry)
        void andThen(andThen(stamped, (entry) => save(storage.store, storage.key, entry)), () => {
          storage.pendingBytes.give(pending.taken)
          this.#settle()
        })
      } else {
        storage.pendingBytes.give(pending.taken)
        this.#deleteReplaced()
        this.#settle()
      }
    } else {
      if (pending) storage!.pendingBytes.give(pending.taken)
      this.#settle()
    }
    this.#handler.onResponseEnd?.(this.#callerController(controller), trailers)
    this.#release()
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#stopCopying() // an errored or aborted response is never stored
    this.#settle(error)
    this.#handler.onResponseError?.(this.#callerController(controller), error)
    this.#release()
  }

  /** The caller has had its response: this handler, which undici may hold a while yet, lets go of it (RELEASED_HANDLER). */
  #release(): void {
    this.#handler = RELEASED_HANDLER
    this.#controller = undefined
  }

  onResponseStarted(): void {
    ;(this.#handler as { onResponseStarted?: () => void }).onResponseStarted?.()
  }

  onBodySent(chunk: Buffer): void {
    this.#handler.onBodySent?.(chunk)
  }

  onRequestSent(): void {
    this.#handler.onRequestSent?.()
  }

  /** This cache's `Cache-Status` member for the response, `entry` being what is stored of it, if anything. */
  #memberFor(cacheName: string, entry: ResponseEntry | undefined): { text: string; raw?: Buffer } {
    const { reason, storage } = this.#context
    if (entry === undefined) return notStoredMember(cacheName, reason)
    const text = formatCacheStatus(cacheName, {
      fwd: reason,
      stored: true,
      ttlSeconds: entry.lifetimeSeconds - entry.initialAgeSeconds,
      key: storage?.key, // the key a hit on it will name
    })
    return { text }
  }

  /** The controller the caller is handed: the one from below (direct), or the cache's own around it. */
  #callerController(controller: Dispatcher.DispatchController): Dispatcher.DispatchController {
    return this.#direct ? controller : this.#wrap(controller)
  }

  #wrap(controller: Dispatcher.DispatchController): CallerController {
    this.#controller ??= new CallerController(controller)
    return this.#controller
  }

  /** Bytes beyond what this response took so far, taken as they come (a response without Content-Length). */
  #takeFor(pending: PendingEntry): boolean {
    const more = pending.bytes - pending.taken
    if (more <= 0) return true
    if (!this.#context.storage!.pendingBytes.take(more)) return false
    pending.taken = pending.bytes
    return true
  }

  /** No more copying; the bytes it took are given back. */
  #stopCopying(): void {
    const pending = this.#pending
    this.#pending = undefined
    if (pending !== undefined) this.#context.storage!.pendingBytes.give(pending.taken)
  }

  #settle(failure?: Error): void {
    if (this.#settled) return
    this.#settled = true
    this.#context.storage?.flight?.settle(failure)
  }

  /** A newer full response that is not stored leaves no older one behind to be served in its place. */
  #deleteReplaced(): void {
    const storage = this.#context.storage
    if (storage?.replaces) void forget(storage.store, storage.key)
  }

  /** The entry to fill, if the response may be stored and is not already known to be too large. */
  #startEntry(status: number, headers: HeaderRecord, statusText: string): PendingEntry | undefined {
    if (this.#context.storage === undefined) return undefined
    const { request, shared, maxEntrySize, pendingBytes, rules } = this.#context.storage
    const now = Date.now()
    const storable = evaluateResponse(policyRequestOf(request), { status, headers }, { shared, now, requestTime: this.#requestTime, rules })
    if (storable === undefined) return undefined
    const entry: ResponseEntry = {
      version: ENTRY_VERSION,
      kind: 'response',
      method: request.method,
      url: request.storedUrl,
      requestHeaders: request.storedHeaders,
      status,
      statusText,
      headers: withoutFields(withoutHopByHop(headers), storable.omittedFields),
      body: NO_BODY_YET,
      createdAt: now,
      initialAgeSeconds: storable.initialAgeSeconds,
      lifetimeSeconds: storable.lifetimeSeconds,
      usefulUntil: 0, // worked out as it is saved (variants.ts), once every field it rests on is set
      policy: storable.policy,
    }
    // The optional fields are set apart rather than spread into the literal, which builds the entry the slow way.
    if (request.storedBody !== undefined) entry.requestBody = request.storedBody
    // Selected by the stored headers, where a credential is its digest (issue #16).
    if (storable.varyNames.length > 0) entry.varyHeaders = pickHeaders(request.storedHeaders, storable.varyNames)
    const { staleIfErrorSeconds } = staleIfErrorRetention(rules.staleIfError)
    if (staleIfErrorSeconds !== undefined) entry.staleIfErrorSeconds = staleIfErrorSeconds
    const maxBodyBytes = maxEntrySize - entrySize(entry)
    // A HEAD response's Content-Length describes the body a GET would get; it has none itself.
    const declaredLength = request.method === 'HEAD' ? 0 : contentLength(headers['content-length'])
    if (maxBodyBytes < 0 || (declaredLength !== undefined && declaredLength > maxBodyBytes)) return undefined
    // A declared length is taken whole now: a response admitted can finish; one that finds no room is not copied.
    const taken = declaredLength ?? 0
    if (!pendingBytes.take(taken)) return undefined
    return { entry, chunks: [], bytes: 0, maxBodyBytes, declaredLength, taken }
  }
}

/**
 * Adds this cache's member to a response head undici made for this response alone, record and raw form,
 * where the caller reads them: no copy of either (issue #17: copying the head and wrapping the controller
 * cost a miss about a tenth of its throughput at 64 in flight). The raw form keeps one `Cache-Status` line,
 * as the record does: undici 7's request() would make an array of two.
 */
function addInPlace(controller: Dispatcher.DispatchController, headers: HeaderRecord, member: { text: string; raw?: Buffer }): void {
  const existing = headers['cache-status']
  headers['cache-status'] = appendCacheStatus(existing, member.text)
  const raw = controller.rawHeaders
  if (!Array.isArray(raw)) return // undici's own clients always give one
  const lines = raw as Buffer[]
  if (existing === undefined) return void lines.push(CACHE_STATUS_NAME, member.raw ?? Buffer.from(member.text, 'latin1'))
  for (let index = lines.length - 2; index >= 0; index -= 2) {
    if (lines[index]!.toString('latin1').toLowerCase() === 'cache-status') lines.splice(index, 2)
  }
  lines.push(CACHE_STATUS_NAME, Buffer.from(headers['cache-status'], 'latin1'))
}

/** Memory behind a body's chunks, beyond the body, that they may keep: about a response head's bytes. */
const HEAD_ALLOWANCE_BYTES = 1024
/** Smaller chunks, on average, are copied: each kept chunk costs a few hundred bytes besides its own. */
const MIN_KEPT_CHUNK_BYTES = 4096

/**
 * The body to store, holding little more memory than the body itself. undici hands out each body chunk as
 * a view of the socket read it came in (measured: 1,236 bytes behind a 1 KiB body, the rest being the
 * response head), so the chunks are kept as they came when no more than about a head lies behind them
 * all: a copy would cost an allocation and a write of every byte per response. (The caller gets the same
 * chunks; chunks handed to a handler are read, not written to, as hits hand out views of stored bodies
 * too.) Otherwise, or when they are many small ones, they are copied into one buffer of exactly their size.
 * A body small enough for one replay chunk is still kept as chunks: its first hit joins it (serve.ts), so
 * that a response nobody asks for again is never copied. A store that does not take chunks
 * (`acceptsBodyChunks`) is given one buffer, made here, once.
 */
function retainedBody(chunks: Buffer[], size: number, store: { maxBodyBytes: number; keepsChunks: boolean }): ResponseBody {
  let held = 0
  let previous: ArrayBufferLike | undefined
  // Chunks of one socket read come one after another, so consecutive ones are the only ones that share.
  for (const chunk of chunks) {
    if (chunk.buffer !== previous) held += chunk.buffer.byteLength
    previous = chunk.buffer
  }
  const fits = held - size <= HEAD_ALLOWANCE_BYTES
  if (chunks.length === 1) return fits ? chunks[0]! : joinChunks(chunks, size)
  const keepsChunks =
    store.keepsChunks &&
    fits &&
    size >= chunks.length * MIN_KEPT_CHUNK_BYTES &&
    bodySize(chunks) <= store.maxBodyBytes
  return keepsChunks ? chunks : joinChunks(chunks, size)
}
