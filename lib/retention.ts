/**
 * How long a stored entry stays useful, for stores that expire entries by themselves (Redis) or purge
 * them (SQLite): while fresh; then while a stale window (`stale-while-revalidate`, `stale-if-error`,
 * RFC 5861) may still serve it; and, when it has a validator, a while longer, so that a stale entry can
 * still earn a cheap 304 instead of a full response (RFC 9111 §4.3).
 */
import { joinHeader } from './headers.js'
import { expiresAt, parseCacheControl, parseDeltaSeconds } from './policy.js'
import type { CacheEntry } from './store.js'

/** How long past its freshness an entry with a validator is kept for revalidation. */
export const REVALIDATION_RETENTION_MS = 7 * 24 * 60 * 60 * 1000
/**
 * How long a `Vary` record written before records said how long they are of use (`VaryEntry.usefulUntil`)
 * is kept after it was last written.
 */
export const VARY_RETENTION_MS = 30 * 24 * 60 * 60 * 1000

/** When the entry stops being of any use (epoch ms). A `Vary` record: when the variants it lists do. */
export function usefulUntil(entry: CacheEntry): number {
  if (entry.kind === 'vary') return typeof entry.usefulUntil === 'number' ? entry.usefulUntil : entry.createdAt + VARY_RETENTION_MS
  const directives = parseCacheControl(joinHeader(entry.headers['cache-control']))
  const staleWindowSeconds = Math.max(
    parseDeltaSeconds(directives.get('stale-while-revalidate')) ?? 0,
    parseDeltaSeconds(directives.get('stale-if-error')) ?? 0,
  )
  const hasValidator = entry.headers.etag !== undefined || entry.headers['last-modified'] !== undefined
  return expiresAt(entry) + Math.max(staleWindowSeconds * 1000, hasValidator ? REVALIDATION_RETENTION_MS : 0)
}
