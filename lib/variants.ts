/**
 * How the responses for one key are laid out in the store. A response without `Vary` is stored under the
 * key itself. Responses with `Vary` leave a `VaryEntry` under the key, naming the request headers that
 * select a variant, and each variant under a key derived from those headers' values.
 */
import type { GuardedStore } from './guarded-store.js'
import type { RequestHeaders } from './headers.js'
import { createVariantKey } from './key.js'
import { andThen, type MaybePromise } from './maybe-promise.js'
import { pickHeaders } from './policy.js'
import { ENTRY_VERSION, type CacheEntry, type ResponseEntry } from './store.js'

export type Lookup =
  | { found: 'response'; entry: ResponseEntry }
  | { found: 'nothing'; missReason: 'uri-miss' | 'vary-miss' }

/** Finds the stored response a request would be served, following a `VaryEntry` to the matching variant. */
export function lookup(store: GuardedStore, key: string, headers: RequestHeaders, url: string): MaybePromise<Lookup> {
  return andThen(store.get(key), (entry) => {
    if (entry === undefined) return { found: 'nothing', missReason: 'uri-miss' }
    if (entry.kind === 'response') return matchResponse(entry, url, 'uri-miss')
    const varyHeaders = pickHeaders(headers, entry.names)
    return andThen(store.get(createVariantKey(key, varyHeaders)), (variant) =>
      variant?.kind === 'response' && sameValues(variant.varyHeaders, varyHeaders)
        ? matchResponse(variant, url, 'vary-miss')
        : { found: 'nothing', missReason: 'vary-miss' },
    )
  })
}

/** A stored response for another URL (a key collision, or a custom key function's choice) is never served. */
function matchResponse(entry: ResponseEntry, url: string, missReason: 'uri-miss' | 'vary-miss'): Lookup {
  return entry.url === url ? { found: 'response', entry } : { found: 'nothing', missReason }
}

/** Stores a response where `lookup` will find it. */
export function save(store: GuardedStore, key: string, entry: ResponseEntry): MaybePromise<void> {
  if (entry.varyHeaders === undefined) return store.set(key, entry)
  const varyEntry: CacheEntry = {
    version: ENTRY_VERSION,
    kind: 'vary',
    names: Object.keys(entry.varyHeaders),
    createdAt: entry.createdAt,
  }
  return andThen(store.set(createVariantKey(key, entry.varyHeaders), entry), () => store.set(key, varyEntry))
}

// RFC 9111 §4.1: a header absent from both requests matches; absent in one only does not.
function sameValues(stored: Record<string, string | null> | undefined, presented: Record<string, string | null>): boolean {
  if (stored === undefined) return false
  for (const name in presented) if (stored[name] !== presented[name]) return false
  return true
}
