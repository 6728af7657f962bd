/**
 * How long a stored entry stays useful: while fresh; then while a stale window (`stale-while-revalidate`,
 * `stale-if-error`, RFC 5861) may still serve it; and, when it has a validator, a while longer, so that a
 * stale entry can still earn a cheap 304 instead of a full response (RFC 9111 §4.3). The cache works it out
 * as it stores an entry and stores it in the entry (`usefulUntil`), which is all a store that expires or
 * purges entries (Redis, SQLite) reads: stores need no HTTP.
 */
import { joinHeader } from './headers.js'
import { parseCacheControl, parseDeltaSeconds } from './directives.js'
import { expiresAt } from './policy.js'
import type { CacheEntry } from '../stores/store.js'

/** How long past its freshness an entry with a validator is kept for revalidation. */
export const REVALIDATION_RETENTION_MS = 7 * 24 * 60 * 60 * 1000
/**
 * How long a `Vary` record written before records said how long they are of use (`VaryEntry.usefulUntil`)
 * is kept after it was last written.
 */
export const VARY_RETENTION_MS = 30 * 24 * 60 * 60 * 1000

/** No field: spread into every entry stored without the option, so made once. */
const NO_RETENTION: { staleIfErrorSeconds?: number } = Object.freeze({})

/**
 * The entry field that keeps an entry for the `staleIfError` option: its seconds, or for `true` (any
 * staleness) the revalidation retention, as a store must expire an entry some time.
 */
export function staleIfErrorRetention(staleIfError: boolean | number | undefined): { staleIfErrorSeconds?: number } {
  if (staleIfError === undefined || staleIfError === false) return NO_RETENTION
  return { staleIfErrorSeconds: staleIfError === true ? REVALIDATION_RETENTION_MS / 1000 : staleIfError }
}

/**
 * When the entry stops being of any use (epoch ms). A `Vary` record: when the variants it lists do; a
 * generation record: when the responses stamped with it do.
 */
export function usefulUntil(entry: CacheEntry): number {
  if (entry.kind === 'generation') return entry.usefulUntil
  if (entry.kind === 'vary') return typeof entry.usefulUntil === 'number' ? entry.usefulUntil : entry.createdAt + VARY_RETENTION_MS
  const directives = parseCacheControl(joinHeader(entry.headers['cache-control']))
  const staleWindowSeconds = Math.max(
    parseDeltaSeconds(directives.get('stale-while-revalidate')) ?? 0,
    parseDeltaSeconds(directives.get('stale-if-error')) ?? 0,
    typeof entry.staleIfErrorSeconds === 'number' ? entry.staleIfErrorSeconds : 0,
  )
  const hasValidator = entry.headers.etag !== undefined || entry.headers['last-modified'] !== undefined
  return expiresAt(entry) + Math.max(staleWindowSeconds * 1000, hasValidator ? REVALIDATION_RETENTION_MS : 0)
}
