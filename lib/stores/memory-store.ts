import { LRUCache } from 'lru-cache'
import { joinChunks } from './body.js'
import { resolveMemoryStoreOptions, type MemoryStoreOptions } from './store-options.js'
import { bodySize, entrySize, FIELD_OVERHEAD_BYTES, headersSize, type CacheEntry, type CacheStore, type ResponseEntry } from './store.js'

/**
 * What a response entry held here costs besides the bytes counted per field and body below, measured
 * (bench/memory-density.mjs: heap and ArrayBuffer bytes held per entry over 5,000 entries of 512 B, each
 * stored then served once): the entry object and its header objects, its key, lru-cache's bookkeeping, the
 * body's Buffer, and what serving it keeps with it for as long as it lives (serve.ts: the raw form of its
 * fields, its last hit's fresh fields and their raw form, Cache-Status with the entry's key among them).
 * With three fields, medians of 2,360 and 2,417 bytes held per entry on Node 22 and 24 (2,084-2,488 over
 * 5 rounds each), where the sizes below count 1,434 and this 1,280 more: 2,714. The policy most entries
 * share (policy.ts) and header values that repeat are shared (kept-raw-headers.ts, `shareStrings`).
 * Before issue #17 this was 2.5 KiB, and 1.5 KiB more for serving (5,501 bytes charged, 3,770 held).
 * Counted for every entry from the start: counted on its first get instead, listing the cache
 * (`entries()`, which gets every entry) would grow every entry and evict a part of them.
 */
const RESPONSE_FIXED_BYTES = 1280
/**
 * What a header field costs besides its name and value (`headersSize` counts 64 bytes for its property and
 * string): the raw form serving keeps, a Buffer for a value no other entry shares (about 100 bytes) and two
 * array slots. Its name and value are counted again, as that Buffer's bytes (a name's are shared).
 */
const SERVED_FIELD_BYTES = 160

/**
 * Bytes the buffer behind a kept body or request body may hold beyond them: about a response head, which a
 * body kept as undici delivered it shares its socket read with (tee.ts keeps a body only so). A body of
 * `SMALL_BODY_BYTES` or less is copied instead, as that head is much of what it would hold.
 */
const SHARED_BUFFER_ALLOWANCE_BYTES = 1024
const SMALL_BODY_BYTES = 4096

/**
 * The default store: entries in this process's memory, least recently used evicted first, bounded in bytes.
 * It never holds more than `maxSize` bytes of entries (body, headers and a fixed part per entry, and what
 * serving an entry keeps with it).
 */
export class MemoryStore implements CacheStore {
  readonly maxSize: number
  readonly maxEntrySize: number
  /** Entries stay objects here, so a body is kept as the chunks it arrived in, not copied into one buffer. */
  readonly acceptsBodyChunks = true
  readonly #entries: LRUCache<string, CacheEntry>
  #evictions = 0

  constructor(options?: MemoryStoreOptions) {
    const resolved = resolveMemoryStoreOptions(options)
    this.maxSize = resolved.maxSize
    this.maxEntrySize = resolved.maxEntrySize
    // No maxEntrySize for lru-cache: `set` refuses entries by `entrySize`, as the cache measures them when it
    // decides what it may store; the size held, a little larger, only bounds the whole.
    this.#entries = new LRUCache<string, CacheEntry>({
      maxSize: resolved.maxSize,
      sizeCalculation: (entry) => Math.min(heldSize(entry), resolved.maxSize),
      dispose: (_entry, _key, reason) => {
        if (reason === 'evict') this.#evictions++
      },
      ...(resolved.maxCount === undefined ? {} : { max: resolved.maxCount }),
    })
  }

  /** Entries dropped so far to stay within `maxSize` and `maxCount` (least recently used first). */
  get evictions(): number {
    return this.#evictions
  }

  /** Bytes held now, as counted against `maxSize`. */
  get size(): number {
    return this.#entries.calculatedSize
  }

  get(key: string): CacheEntry | undefined {
    return this.#entries.get(key)
  }

  set(key: string, entry: CacheEntry): void {
    // A newer response must not leave an older one behind, so the key is cleared first, stored or not.
    this.#entries.delete(key)
    if (entrySize(entry) > this.maxEntrySize) return
    if (entry.kind === 'response') {
      keepOwnBytes(entry)
      shareStrings(entry)
    }
    this.#entries.set(key, entry)
  }

  delete(key: string): void {
    this.#entries.delete(key)
  }

  keys(): Iterable<string> {
    return [...this.#entries.keys()]
  }

  clear(): void {
    this.#entries.clear()
  }
}

/** What holding `entry` here costs: for a response, measured as above; for the others `entrySize`. */
function heldSize(entry: CacheEntry): number {
  if (entry.kind !== 'response') return entrySize(entry)
  const request = entry.url.length + headersSize(entry.requestHeaders) + bufferSize(entry.requestBody)
  const body = Array.isArray(entry.body) ? bodySize(entry.body) + SHARED_BUFFER_ALLOWANCE_BYTES : bufferSize(entry.body as Uint8Array)
  return RESPONSE_FIXED_BYTES + request + body + headersSize(entry.headers) + headersSize(entry.headers, SERVED_FIELD_BYTES) + varySize(entry.varyHeaders)
}

/** A body or request body kept as one buffer: its bytes, and those behind it a larger one may hold. */
function bufferSize(bytes: Uint8Array | undefined): number {
  if (bytes === undefined) return 0
  return bytes.byteLength + (bytes.byteLength > SMALL_BODY_BYTES ? SHARED_BUFFER_ALLOWANCE_BYTES : 0)
}

/** The request header values that select a variant: counted as header fields are, an absent one as empty. */
function varySize(varyHeaders: Record<string, string | null> | undefined): number {
  let size = 0
  for (const name in varyHeaders) size += FIELD_OVERHEAD_BYTES + name.length + (varyHeaders[name]?.length ?? 0)
  return size
}

/**
 * Makes the entry's bytes its own where they are a view of a larger buffer, as it is kept for as long as it
 * is stored: a small request body (Buffer.from of a string, Buffer.concat of a stream, a JSON body written
 * again) or a body a user stored comes from Node's shared Buffer pool, and would keep a whole pool slab
 * alive (8 KiB on Node 22, 64 KiB on Node 24; issue #16); a small body as undici delivered it shares its
 * socket read with the response head (725 bytes held for 512). A body kept as chunks came from the cache,
 * which keeps chunks only when they share no more than a response head (tee.ts).
 */
function keepOwnBytes(entry: ResponseEntry): void {
  if (!Array.isArray(entry.body)) entry.body = ownBytes(entry.body as Uint8Array)
  if (entry.requestBody !== undefined) entry.requestBody = ownBytes(entry.requestBody)
}

function ownBytes(bytes: Uint8Array): Uint8Array {
  const beyond = bytes.buffer.byteLength - bytes.byteLength
  if (beyond === 0 || (beyond <= SHARED_BUFFER_ALLOWANCE_BYTES && bytes.byteLength > SMALL_BODY_BYTES)) return bytes
  return joinChunks([bytes], bytes.byteLength)
}

/** Puts in the entry the strings other entries share for its status text and short header values (below). */
function shareStrings(entry: ResponseEntry): void {
  entry.statusText = sharedString(entry.statusText)
  const headers = entry.headers
  if (Object.isFrozen(headers)) return // a user's own entry: left as it is
  for (const name in headers) {
    const value = headers[name]!
    if (typeof value === 'string') headers[name] = sharedString(value)
  }
}

/**
 * Header values and status texts repeat from one response to the next (`Cache-Control`, `Content-Type`, a
 * `Date` for every response of the same second, "OK"), and each arrives as a string of its own: an entry
 * keeps the first one seen of each short one instead, so that entries share it (about 100 bytes per
 * entry with three fields, measured). The ones remembered are forgotten all at once when there are more.
 */
const MAX_SHARED_LENGTH = 64
const MAX_SHARED_STRINGS = 1000
const strings = new Map<string, string>()
function sharedString(text: string): string {
  if (text.length > MAX_SHARED_LENGTH) return text
  const known = strings.get(text)
  if (known !== undefined) return known
  if (strings.size >= MAX_SHARED_STRINGS) strings.clear()
  strings.set(text, text)
  return text
}
