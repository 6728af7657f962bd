/**
 * RFC 9111 §4.4 across users (issue #16 review): a successful unsafe request invalidates what is stored for
 * its target URL, but a response to a request with credentials is stored under a key holding a digest of
 * them, which another user's unsafe request (or one without credentials) cannot name. So each such response
 * is stamped with its URL's generation: a random token in a record stored beside the key of the same
 * request without credentials, which every user's request of the URL knows. It is served only while the
 * record holds that token. An unsafe request deletes the record, and with it every user's entry for the URL
 * stops being served, in every process sharing the store; a record evicted or lost does the same: a miss,
 * never a wrong hit. A request without credentials never reads a record, so its hits cost nothing more.
 */
import { randomUUID } from 'node:crypto'
import type { GuardedStore } from '../stores/guarded-store.js'
import { andThen, type MaybePromise } from '../stores/maybe-promise.js'
import { usefulUntil, VARY_RETENTION_MS } from '../rules/retention.js'
import { ENTRY_VERSION, type GenerationEntry, type ResponseEntry } from '../stores/store.js'

/** The key of the generation record for the responses whose request without credentials has `fallbackKey`. */
export function generationKey(fallbackKey: string): string {
  return `${fallbackKey}:credentials`
}

/** The token of the URL's current generation, `undefined` when there is none (never stored, or invalidated). */
export function readGeneration(store: GuardedStore, fallbackKey: string): MaybePromise<string | undefined> {
  return andThen(store.get(generationKey(fallbackKey)), (record) => (record?.kind === 'generation' ? record.generation : undefined))
}

/** Whether a response stored for a request with credentials belongs to the URL's current generation. */
export function isCurrent(entry: ResponseEntry, generation: string | undefined): boolean {
  return generation !== undefined && entry.generation === generation
}

/**
 * The entry as it is stored for `request`: for a request with credentials, stamped with the URL's current
 * generation, which is started when there is none. A record that would expire before the entry is written
 * again under a new token (never the old one: an unsafe request may have deleted it meanwhile, and writing
 * it back would make the entries it invalidated servable again); entries of the old one become misses.
 */
export function stampGeneration(store: GuardedStore, request: { fallbackKey?: string }, entry: ResponseEntry): MaybePromise<ResponseEntry> {
  const { fallbackKey } = request
  if (fallbackKey === undefined) return entry
  const key = generationKey(fallbackKey)
  return andThen(store.get(key), (record) => {
    const until = usefulUntil(entry)
    if (record?.kind === 'generation' && record.usefulUntil >= until) return { ...entry, generation: record.generation }
    // Kept a month past the entry that starts it, so that the entries stored after it fit in it too and a
    // URL starts a new generation once in a long while.
    const started: GenerationEntry = {
      version: ENTRY_VERSION,
      kind: 'generation',
      generation: randomUUID(),
      createdAt: Date.now(),
      usefulUntil: until + VARY_RETENTION_MS,
    }
    return andThen(store.set(key, started), () => ({ ...entry, generation: started.generation }))
  })
}
