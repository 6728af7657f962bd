import { bodyLength, isResponseBody, type ResponseBody } from './body.js'
import type { MaybePromise } from './maybe-promise.js'

/** Response header fields: lower-case names, repeated fields as arrays (as undici's handler API gives them). */
export type HeaderRecord = Record<string, string | string[]>

/** A request's header fields: lower-case names, repeated fields joined with ", ". */
export type RequestHeaders = Record<string, string>

/**
 * The format version of stored entries. An entry written by another version is a miss, and is deleted,
 * so that a store shared by several releases never serves data it cannot read correctly.
 */
export const ENTRY_VERSION = 4

/** One stored response: plain, serialisable data, so that a store never needs to know HTTP. */
export interface ResponseEntry {
  /** The format version the entry was written in (`ENTRY_VERSION`). */
  version: typeof ENTRY_VERSION
  /** A stored response. */
  kind: 'response'
  /** The request method the response answered. */
  method: string
  /**
   * The normalised request URL the response answered, ignored parameters removed; with the default key
   * function it is compared on every read, so that a key collision is never served.
   */
  url: string
  /** The request's headers, ignored parameters removed: what `recreateKeys()` keys the entry by again. */
  requestHeaders: RequestHeaders
  /** The normalised request body, for methods cached with their body in the key. */
  requestBody?: Uint8Array
  /** The response's status code. */
  status: number
  /** The response's reason phrase, as received ('' when there was none). */
  statusText: string
  /** The response's end-to-end header fields, as received (hop-by-hop fields removed). */
  headers: HeaderRecord
  /**
   * The whole body, exactly as received (still content-coded). Empty for HEAD. One buffer, or, only in a
   * store that sets `acceptsBodyChunks`, the chunks it arrived in, in order.
   */
  body: ResponseBody
  /** For a response with `Vary`: the value of each named request header (`null` when absent). */
  varyHeaders?: Record<string, string | null>
  /** When the response was received (epoch ms). */
  createdAt: number
  /** The response's age when it was received (its `Age` field), in seconds. */
  initialAgeSeconds: number
  /** How long the response is fresh from its generation (RFC 9111 §4.2.1), in seconds. */
  lifetimeSeconds: number
  /**
   * How long past its freshness the cache's `staleIfError` option may serve it, in seconds, so that stores
   * that expire entries by themselves keep it that long (retention.ts). Absent without the option.
   */
  staleIfErrorSeconds?: number
  /**
   * Until when the response may be of any use (epoch ms): while fresh, while a stale window may serve it,
   * and, with a validator, a while longer for a cheap revalidation. The cache works it out as it stores the
   * entry, so that a store that expires or purges entries needs no HTTP (see `retainUntil`). Absent in
   * entries stored before it was added.
   */
  usefulUntil?: number
  /** The http-cache-semantics policy, kept for revalidation; only `policy.ts` reads it. */
  policy: Record<string, unknown>
  /**
   * For a response to a request with credentials: the token of its URL's `GenerationEntry` when it was
   * stored. It is served only while that entry holds the same token (credential-generations.ts).
   */
  generation?: string
}

/**
 * Stored at a URL's key when its responses carry `Vary`: the request headers that select a variant.
 * Each variant is a `ResponseEntry` under a key derived from those headers' values.
 */
export interface VaryEntry {
  /** The format version the entry was written in (`ENTRY_VERSION`). */
  version: typeof ENTRY_VERSION
  /** A URL's `Vary` record. */
  kind: 'vary'
  /** Lower-case names of the request headers that select a variant. */
  names: string[]
  /**
   * The keys of the variants stored since this entry was written, newest last. Only these are served:
   * when this entry is deleted (invalidation, replacement), variants left in the store stay unreachable
   * even after a new `VaryEntry` takes its place.
   */
  variants: string[]
  /** When the record was last written (epoch ms). */
  createdAt: number
  /**
   * Until when the longest-lived variant listed may still be of use (epoch ms, see `usefulUntil`): the entry
   * is kept that long. Absent in entries written before it was added.
   */
  usefulUntil?: number
}

/**
 * Stored beside the key of a URL's request without credentials while responses to requests with
 * credentials are stored for it: a random token they are stamped with, and which an unsafe request
 * removes, so that none of them is served any more (RFC 9111 §4.4, see credential-generations.ts).
 */
export interface GenerationEntry {
  /** The format version the entry was written in (`ENTRY_VERSION`). */
  version: typeof ENTRY_VERSION
  /** A URL's current generation of responses to requests with credentials. */
  kind: 'generation'
  /** The random token the responses of this generation are stamped with. */
  generation: string
  /** When the generation was started (epoch ms). */
  createdAt: number
  /** Until when the longest-lived response stamped with it may be of use (epoch ms, see `usefulUntil`). */
  usefulUntil: number
}

/** What a `CacheStore` holds under a key. */
export type CacheEntry = ResponseEntry | VaryEntry | GenerationEntry

/** How long a store keeps an entry that does not say until when it is of use (one stored before it did). */
export const UNDATED_RETENTION_MS = 30 * 24 * 60 * 60 * 1000

/**
 * Until when a store should keep an entry (epoch ms), for stores that expire entries by themselves (Redis)
 * or purge them (SQLite): the `usefulUntil` the cache gave it, or, for an entry without one, 30 days after
 * it was created.
 */
export function retainUntil(entry: CacheEntry): number {
  return Number.isFinite(entry.usefulUntil) ? entry.usefulUntil! : entry.createdAt + UNDATED_RETENTION_MS
}

/**
 * Where entries live. Any method may return a Promise. A store may hold entries however it likes
 * (objects, JSON, binary), as long as `get` returns what `set` was given, as plain data.
 */
export interface CacheStore {
  /** The entry stored under `key`, as `set` was given it (plain data, bytes intact), or `undefined`. */
  get(key: string): MaybePromise<CacheEntry | undefined>
  /** Stores `entry` under `key`, replacing what was there; a store may decline it (too large), as if evicted. */
  set(key: string, entry: CacheEntry): MaybePromise<void>
  /** Removes what is stored under `key`; nothing under it is not an error. */
  delete(key: string): MaybePromise<void>
  /** Every key stored (the cache's inspection walks them); may be an async iterable. */
  keys(): MaybePromise<Iterable<string> | AsyncIterable<string>>
  /** Removes every entry. */
  clear(): MaybePromise<void>
  /** Lets go of what the store holds open; the cache never calls it (a store may be shared). */
  close?(): MaybePromise<void>
  /** The largest entry (in bytes, see `entrySize`) the store accepts; the cache buffers no more than this. */
  readonly maxEntrySize?: number
  /**
   * The most bytes (see `entrySize`) the store holds, if it is bounded: responses on their way to it hold
   * no more than this together either (64 MiB for a store that does not say).
   */
  readonly maxSize?: number
  /** How many entries the store has dropped to stay within its bounds, if it keeps count: `stats.evicted`. */
  readonly evictions?: number
  /**
   * `true`: `set` may be given a response whose `body` is an array of chunks, and `get` returns it as given.
   * For stores that keep entries as objects (MemoryStore): a miss then stores its body without copying it.
   * A hit may join a small body of several chunks and put the joined buffer in the entry object `get`
   * returned, so that later hits of the same object replay one chunk. Other stores are always given one
   * `Uint8Array`.
   */
  readonly acceptsBodyChunks?: boolean
}

/**
 * What an entry held in memory costs as a JavaScript object, in bytes, measured (bench/README.md, "Memory"):
 * the entry object, its policy object, the key and the store's bookkeeping, besides the bytes counted below.
 */
const FIXED_OVERHEAD_BYTES = 2560
/** What one header field costs as a property of an object, besides its characters. */
export const FIELD_OVERHEAD_BYTES = 64

/**
 * The size an entry counts for against a store's bounds: its body, header and URL bytes, and what holding
 * it in memory costs besides (so that MemoryStore's `maxSize` bounds the heap it takes, not just the bytes).
 */
export function entrySize(entry: CacheEntry): number {
  if (entry.kind === 'vary') return FIXED_OVERHEAD_BYTES + entry.names.join().length + entry.variants.join().length
  if (entry.kind === 'generation') return FIXED_OVERHEAD_BYTES + entry.generation.length
  const request = entry.url.length + headersSize(entry.requestHeaders) + (entry.requestBody?.byteLength ?? 0)
  return FIXED_OVERHEAD_BYTES + request + bodySize(entry.body) + headersSize(entry.headers)
}

/** What a body kept as chunks costs per chunk besides its bytes: a Buffer, its ArrayBuffer and their bookkeeping. */
const CHUNK_OVERHEAD_BYTES = 256

/** The size a body counts for: its bytes, and for one kept as chunks what holding each chunk costs. */
export function bodySize(body: ResponseBody): number {
  return bodyLength(body) + (Array.isArray(body) ? body.length * CHUNK_OVERHEAD_BYTES : 0)
}

/** Bytes of header names and values, and what each field costs besides (as an object property, by default). */
export function headersSize(headers: HeaderRecord | RequestHeaders, fieldOverheadBytes = FIELD_OVERHEAD_BYTES): number {
  let size = 0
  for (const name in headers) {
    const value = headers[name]!
    if (Array.isArray(value)) for (const item of value) size += fieldOverheadBytes + name.length + item.length
    else size += fieldOverheadBytes + name.length + value.length
  }
  return size
}

/**
 * Checks that what a store returned is an entry of this format version, with every field a hit reads of
 * the type it reads: a store's data is not trusted, as a field of the wrong type (a header value that is a
 * number, say) would fail the request in the middle of serving it. Anything else (an older version, or
 * data that is not an entry at all) is `undefined`: a miss.
 */
export function decodeEntry(value: unknown): CacheEntry | undefined {
  if (value == null || typeof value !== 'object') return undefined
  const entry = value as Partial<CacheEntry>
  if (entry.version !== ENTRY_VERSION) return undefined
  if (entry.kind === 'vary') return isStringArray(entry.names) && isStringArray(entry.variants) ? (entry as VaryEntry) : undefined
  if (entry.kind === 'generation') return isWellFormedGeneration(entry) ? (entry as GenerationEntry) : undefined
  if (entry.kind !== 'response') return undefined
  return isWellFormedResponse(entry as Partial<ResponseEntry>) ? (entry as ResponseEntry) : undefined
}

function isWellFormedGeneration(entry: Partial<GenerationEntry>): boolean {
  return typeof entry.generation === 'string' && Number.isFinite(entry.usefulUntil) && Number.isFinite(entry.createdAt)
}

function isWellFormedResponse(response: Partial<ResponseEntry>): boolean {
  return (
    (response.generation === undefined || typeof response.generation === 'string') &&
    typeof response.url === 'string' &&
    typeof response.method === 'string' &&
    isFinalStatus(response.status) &&
    typeof response.statusText === 'string' &&
    isResponseBody(response.body) &&
    isHeaderRecord(response.headers) &&
    isStringRecord(response.requestHeaders, { nullable: false }) &&
    (response.requestBody === undefined || response.requestBody instanceof Uint8Array) &&
    (response.varyHeaders === undefined || isStringRecord(response.varyHeaders, { nullable: true })) &&
    Number.isFinite(response.createdAt) &&
    Number.isFinite(response.initialAgeSeconds) &&
    Number.isFinite(response.lifetimeSeconds) &&
    typeof response.policy === 'object' &&
    response.policy !== null
  )
}

/** A status a response is served with: an interim one (1xx) would leave the caller waiting for the final one. */
function isFinalStatus(status: unknown): boolean {
  return Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 999
}

/** Response header fields: each a string, or the strings of a repeated field. (On every hit: plain loops.) */
function isHeaderRecord(headers: unknown): boolean {
  if (typeof headers !== 'object' || headers === null) return false
  for (const name in headers) {
    const value = (headers as Record<string, unknown>)[name]
    if (typeof value !== 'string' && !isStringArray(value)) return false
  }
  return true
}

/** Request header fields (`nullable`: or the `null` of a field the request did not have). */
function isStringRecord(record: unknown, { nullable }: { nullable: boolean }): boolean {
  if (typeof record !== 'object' || record === null) return false
  for (const name in record) {
    const value = (record as Record<string, unknown>)[name]
    if (typeof value !== 'string' && !(nullable && value === null)) return false
  }
  return true
}

function isStringArray(value: unknown): value is string[] {
  if (!Array.isArray(value)) return false
  for (const item of value) if (typeof item !== 'string') return false
  return true
}
