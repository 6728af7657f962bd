import { LRUCache } from 'lru-cache'
import { resolveMemoryStoreOptions, type MemoryStoreOptions } from './store-options.js'
import { entrySize, type CacheEntry, type CacheStore } from '../store.js'

/**
 * The default store: entries in this process's memory, least recently used evicted first, bounded in bytes.
 * It never holds more than `maxSize` bytes of entries (body, headers and a fixed part per entry).
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
    this.#entries = new LRUCache<string, CacheEntry>({
      maxSize: resolved.maxSize,
      maxEntrySize: resolved.maxEntrySize,
      sizeCalculation: entrySize,
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
    // lru-cache refuses an entry over maxEntrySize but keeps the old one; a newer response must not leave
    // an older one behind, so the key is cleared first.
    this.#entries.delete(key)
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
