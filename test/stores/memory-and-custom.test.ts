import { MemoryStore, type CacheEntry, type CacheStore } from '../../lib/index.js'
import { entrySize } from '../../lib/stores/store.js'
import { describeStoreContract } from './contract.js'

describeStoreContract('MemoryStore', async () => ({ store: new MemoryStore({ maxSize: 1024 * 1024, maxEntrySize: 256 * 1024 }), close: async () => {} }))

/** The smallest custom store a user might write: a Map, keeping the entry size limit it declares. */
class MapStoreWithLimit implements CacheStore {
  readonly maxEntrySize = 256 * 1024
  readonly #entries = new Map<string, CacheEntry>()

  get(key: string): CacheEntry | undefined {
    return this.#entries.get(key)
  }

  set(key: string, entry: CacheEntry): void {
    this.#entries.delete(key)
    if (entrySize(entry) <= this.maxEntrySize) this.#entries.set(key, entry)
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

describeStoreContract('a minimal custom store', async () => ({ store: new MapStoreWithLimit(), close: async () => {} }))
