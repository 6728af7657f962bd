import { LRUCache } from 'lru-cache'
import { joinChunks } from '../body.js'
import { resolveMemoryStoreOptions, type MemoryStoreOptions } from './store-options.js'
import { entrySize, type CacheEntry, type CacheStore, type ResponseEntry } from '../store.js'

/**
 * What the cache keeps with a response entry object once it has served it, besides what `entrySize` counts:
 * the raw form of its fields (a Buffer per value, names shared) and its last hit's fresh fields (serve.ts).
 * MemoryStore hands back the same object on every get, so those live as long as the entry. Measured (issue
 * #16, test/memory-bounds.test.ts): about 1.3 KiB, and 140 bytes per field besides its value. Counted for
 * every entry from the start: counted on its first get instead, listing the cache (`entries()`, which gets
 * every entry) would grow every entry and evict a part of them.
 */
const SERVED_FIXED_BYTES = 1536
const SERVED_FIELD_BYTES = 160

/**
 * Bytes the buffer behind a kept body or request body may hold beyond them: about a response head, which a
 * body kept as undici delivered it shares its socket read with (tee.ts keeps a body only so).
 */
const SHARED_BUFFER_ALLOWANCE_BYTES = 1024

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
    if (entry.kind === 'response') keepOwnBytes(entry)
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

/** What holding `entry` here costs: `entrySize`, and for a response what serving it keeps with it. */
function heldSize(entry: CacheEntry): number {
  if (entry.kind !== 'response') return entrySize(entry)
  let served = SERVED_FIXED_BYTES
  for (const name in entry.headers) {
    const value = entry.headers[name]!
    if (Array.isArray(value)) for (const item of value) served += SERVED_FIELD_BYTES + item.length
    else served += SERVED_FIELD_BYTES + value.length
  }
  return entrySize(entry) + served
}

/**
 * Makes the entry's bytes its own where they are a view of a larger buffer, as it is kept for as long as it
 * is stored: a small request body (Buffer.from of a string, Buffer.concat of a stream, a JSON body written
 * again) or a body a user stored comes from Node's shared Buffer pool, and would keep a whole pool slab
 * alive (8 KiB on Node 22, 64 KiB on Node 24; issue #16). A body kept as chunks came from the cache, which
 * keeps chunks only when they share no more than a response head (tee.ts).
 */
function keepOwnBytes(entry: ResponseEntry): void {
  if (!Array.isArray(entry.body)) entry.body = ownBytes(entry.body as Uint8Array)
  if (entry.requestBody !== undefined) entry.requestBody = ownBytes(entry.requestBody)
}

function ownBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.buffer.byteLength - bytes.byteLength <= SHARED_BUFFER_ALLOWANCE_BYTES) return bytes
  return joinChunks([bytes], bytes.byteLength)
}
