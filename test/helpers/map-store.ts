import type { CacheEntry, CacheStore } from '../../lib/index.js'

/** The smallest possible custom store: a Map, recording the keys it was asked to delete. */
export class MapStore implements CacheStore {
  readonly entries = new Map<string, unknown>()
  readonly deleted: string[] = []

  get(key: string): CacheEntry | undefined {
    return this.entries.get(key) as CacheEntry | undefined
  }

  set(key: string, entry: CacheEntry): void {
    this.entries.set(key, entry)
  }

  delete(key: string): void {
    this.deleted.push(key)
    this.entries.delete(key)
  }

  keys(): Iterable<string> {
    return [...this.entries.keys()]
  }

  clear(): void {
    this.entries.clear()
  }
}
