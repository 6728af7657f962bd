/** What `cache.stats` reports: counts since the cache was created. */
export interface CacheStats {
  /** Responses served fresh from the store, including 304s answered from a fresh entry to a caller's own conditional request. */
  hits: number
  /**
   * Requests of a cached method answered by the origin in full: nothing usable was stored, or what was
   * stored had to be revalidated and the origin sent a new response (a request that waited on an identical
   * one is counted by how it was then served; a refresh behind a stale response answers nobody).
   */
  misses: number
  /** Stored responses the origin confirmed with a 304, in the foreground or in the background. */
  revalidated: number
  /** Stale responses served: allowed by the request (`max-stale`), by `stale-while-revalidate`, or standing in for a failed origin (`stale-if-error`). */
  stale: number
  /** Responses written to the store: new ones, and stored ones renewed by a 304. */
  stored: number
  /** The bytes of those responses, each counted as it counts against a store's size bound (`entrySize`). */
  bytesStored: number
  /** Entries the store dropped to stay within its bounds, as the store reports them (`CacheStore.evictions`). */
  evicted: number
  /**
   * Failures the cache absorbed without failing a request: store calls that threw, rejected or returned
   * something unreadable, key functions and filters that threw, failed background revalidations, and
   * failures of the cache's own logic.
   */
  errors: number
  /**
   * The share of the requests counted above that the store answered without waiting for the origin:
   * `(hits + stale) / (hits + stale + revalidated + misses)`, 0 before any. (`stale` includes
   * `stale-if-error` answers, which did wait for the origin to fail.)
   */
  hitRatio: number
}

/** The counters one cache updates as it works; `evicted` comes from the store when read. */
export class StatsCounters {
  hits = 0
  misses = 0
  revalidated = 0
  stale = 0
  stored = 0
  bytesStored = 0
  errors = 0

  snapshot(evicted: number): CacheStats {
    const { hits, misses, revalidated, stale, stored, bytesStored, errors } = this
    const counted = hits + stale + revalidated + misses
    return { hits, misses, revalidated, stale, stored, bytesStored, evicted, errors, hitRatio: counted === 0 ? 0 : (hits + stale) / counted }
  }
}
