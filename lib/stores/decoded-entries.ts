import { LRUCache } from 'lru-cache'
import { entrySize, type CacheEntry } from './store.js'

/**
 * Entries a byte store has decoded lately, by key and row version, so that a hit on a hot entry neither
 * reads its bytes nor decodes them again, and hands back the same entry object (whose raw headers the
 * cache builds once per object). A row written since, by this process or another, has another version
 * and is read afresh. Bounded in bytes, as the store's entries are counted.
 */
export class DecodedEntries {
  readonly #entries: LRUCache<string, { version: number; entry: CacheEntry }>

  constructor(maxBytes: number) {
    this.#entries = new LRUCache({ maxSize: maxBytes, sizeCalculation: ({ entry }) => Math.min(entrySize(entry), maxBytes) })
  }

  /** The entry decoded for this key at this version, if it is still here. */
  get(key: string, version: number): CacheEntry | undefined {
    const decoded = this.#entries.get(key)
    return decoded?.version === version ? decoded.entry : undefined
  }

  remember(key: string, version: number, entry: CacheEntry): void {
    this.#entries.set(key, { version, entry })
  }

  forget(key: string): void {
    this.#entries.delete(key)
  }

  clear(): void {
    this.#entries.clear()
  }
}
