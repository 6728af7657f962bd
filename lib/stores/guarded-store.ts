import { debuglog } from 'node:util'
import { isPromise, type MaybePromise } from './maybe-promise.js'
import { errorChannel, publishError, publishStored, storeChannel, type RequestSummary } from '../diagnostics.js'
import type { StatsCounters } from '../stats.js'
import { decodeEntry, entrySize, type CacheEntry, type CacheStore, type ResponseEntry } from './store.js'

const log = debuglog('undici-http-cache')

/** The turns of `writeInTurn` per store object, so that caches sharing one store take turns with each other too. */
const turnsByStore = new WeakMap<CacheStore, Map<string, Promise<void>>>()

/**
 * Wraps any store so that its failures never reach a request: a `get` that throws, rejects, takes longer
 * than `timeoutMs` or returns something that is not an entry of this version, or a response whose body is
 * not as long as it says (`isIntact`, a rule of HTTP's the cache hands in: the guard knows none), is a
 * miss; a failed or slow
 * `set` or `delete` is "not stored". Each failure is counted in `stats.errors` and logged (once per kind
 * of failure), and each response written is counted in `stats.stored`. A synchronous store stays
 * synchronous, so a hit from memory does not wait for a promise.
 */
export class GuardedStore {
  readonly #store: CacheStore
  readonly #loggedKinds = new Set<string>()
  readonly #stats: StatsCounters
  readonly #timeoutMs: number
  readonly #isIntact: (entry: ResponseEntry) => boolean
  /** Writes (set, delete, and whole saves of a URL's entries) a promise-returning store has not finished yet. */
  readonly #writing = new Set<Promise<void>>()
  /** The last `writeInTurn` begun for each key, while it has not finished. */
  readonly #turns: Map<string, Promise<void>>

  constructor(store: CacheStore, options: { stats: StatsCounters; timeoutMs: number; isIntact: (entry: ResponseEntry) => boolean }) {
    this.#store = store
    this.#stats = options.stats
    this.#timeoutMs = options.timeoutMs
    this.#isIntact = options.isIntact
    this.#turns = turnsByStore.get(store) ?? new Map()
    turnsByStore.set(store, this.#turns)
  }

  /** Whether the store takes response bodies as the chunks they arrived in (`CacheStore.acceptsBodyChunks`). */
  get acceptsBodyChunks(): boolean {
    return this.#store.acceptsBodyChunks === true
  }

  /** Entries the store has evicted, if it says. */
  get evictions(): number {
    return this.#store.evictions ?? 0
  }

  get(key: string): MaybePromise<CacheEntry | undefined> {
    const value = this.#read(key)
    // No callback made for a store that answers at once (memory): this is on every lookup.
    return isPromise(value) ? value.then((read) => this.#decode(key, read)) : this.#decode(key, value)
  }

  /**
   * For the inspection API, which reads every key the store lists: a value that is not an entry of this
   * version is skipped (`undefined`), never deleted, as in a Redis shared with other data the keys under
   * the prefix may not all be the cache's.
   */
  async peek(key: string): Promise<CacheEntry | undefined> {
    const entry = decodeEntry(await this.#read(key))
    return entry?.kind === 'response' && !this.#isIntact(entry) ? undefined : entry
  }

  /** What the store holds under `key`, as it gave it; a failed or slow read is counted, and reads as nothing. */
  #read(key: string): MaybePromise<unknown> {
    try {
      const result = this.#store.get(key)
      if (!isPromise(result)) return result
      return this.#limit(result, 'get').catch((error: unknown) => this.#fail('store get', error, undefined, key))
    } catch (error) {
      return this.#fail('store get', error, undefined, key)
    }
  }

  set(key: string, entry: CacheEntry): MaybePromise<void> {
    const stored = (): void => {
      if (entry.kind !== 'response') return
      this.#stats.stored++
      this.#stats.bytesStored += entrySize(entry)
      if (storeChannel.hasSubscribers) publishStored(key, entry)
    }
    return this.#call('set', key, () => this.#store.set(key, entry), stored)
  }

  delete(key: string): MaybePromise<void> {
    return this.#call('delete', key, () => this.#store.delete(key))
  }

  #call(kind: string, key: string, call: () => MaybePromise<void>, onDone?: () => void): MaybePromise<void> {
    try {
      const result = call()
      if (!isPromise(result)) return onDone?.()
      return this.#track(this.#limit(result, kind).then(onDone, (error: unknown) => this.#fail(`store ${kind}`, error, undefined, key)))
    } catch (error) {
      this.#fail(`store ${kind}`, error, undefined, key)
    }
  }

  /**
   * Runs `work`, which reads what `key` holds and writes it back changed (a URL's `Vary` record, see
   * variants.ts), once the work begun before it for the same key has finished: two at once would each
   * write back what they read, and the first one's change would be lost. Counted as a write from the
   * start, so that `writesDone()` waits for it: its own writes begin only after its read. A synchronous
   * store runs it at once (its read and write cannot interleave with another's).
   */
  writeInTurn(key: string, work: () => MaybePromise<void>): MaybePromise<void> {
    const previous = this.#turns.get(key)
    const result = previous === undefined ? work() : previous.then(work)
    if (!isPromise(result)) return result
    const turn = this.#track(result)
    this.#turns.set(key, turn)
    void turn.then(() => {
      if (this.#turns.get(key) === turn) this.#turns.delete(key)
    })
    return turn
  }

  /** Counts a write as begun until it settles (fulfilled or not: `writesDone()` only waits). */
  #track(write: Promise<void>): Promise<void> {
    const settled = write.then(
      () => undefined,
      (error: unknown) => this.#fail('store write', error, undefined),
    )
    this.#writing.add(settled)
    void settled.then(() => this.#writing.delete(settled))
    return settled
  }

  /** Resolves once every write begun so far, and any begun meanwhile, has finished, failed or timed out. */
  async writesDone(): Promise<void> {
    while (this.#writing.size > 0) await Promise.all(this.#writing)
  }

  /** The store's answer, or a rejection once `timeoutMs` has passed without one: a hanging store is a failing one. */
  #limit<T>(result: Promise<T>, kind: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`store ${kind} took longer than ${this.#timeoutMs} ms`)), this.#timeoutMs)
      timer.unref() // a slow store never keeps the process alive
    })
    return Promise.race([result, timeout]).finally(() => clearTimeout(timer))
  }

  /**
   * What is not an entry of this format version is a miss. One of the cache's entries (another version, or
   * damaged) is deleted so that it does not linger; anything else is left alone, for it may not be the
   * cache's, and storing a response under the key replaces it anyway. A response whose body the store
   * shortened or lengthened is a damaged entry (issue #16): served, its caller would get a body that does
   * not fill its Content-Length, and no error.
   */
  #decode(key: string, value: unknown): CacheEntry | undefined {
    if (value === undefined || value === null) return undefined
    const entry = decodeEntry(value)
    if (entry === undefined) {
      this.#fail('store decode', new Error('stored value is not an entry of this format version'), undefined, key)
      if (isAnyVersionOfEntry(value)) void this.delete(key)
      return undefined
    }
    if (entry.kind === 'response' && !this.#isIntact(entry)) {
      this.#fail('store body', new Error('stored body is not as long as its entry says'), undefined, key)
      void this.delete(key)
      return undefined
    }
    return entry
  }

  /**
   * Counts and logs (once per kind) a failure that the cache absorbed: a store call, or the cache's own
   * logic or a user callback failing around one request.
   */
  recordFailure(kind: string, error: unknown, request?: () => RequestSummary | undefined): void {
    this.#fail(kind, error, undefined, undefined, request)
  }

  /**
   * For the inspection API (`cache.urls()`, `delete()`, `clear()` …), where a user asked for the store's
   * contents and a silent empty answer would mislead: the failure is counted and logged, then rethrown.
   */
  async administer<T>(kind: string, call: (store: CacheStore) => MaybePromise<T>): Promise<T> {
    try {
      return await call(this.#store)
    } catch (error) {
      this.#fail(`store ${kind}`, error, undefined)
      throw error
    }
  }

  #fail<T>(kind: string, error: unknown, fallback: T, key?: string, request?: () => RequestSummary | undefined): T {
    this.#stats.errors++
    if (errorChannel.hasSubscribers) publishError(OPERATIONS[kind] ?? kind.replace(/^store /, ''), error, key, request)
    if (!this.#loggedKinds.has(kind)) {
      this.#loggedKinds.add(kind)
      log('%s failed (further %s failures are counted, not logged): %s', kind, kind, error)
    }
    return fallback
  }
}

/** The `operation` an error message names for a kind of failure whose name says it otherwise. */
const OPERATIONS: Record<string, string> = { 'keying or lookup': 'key' }

/** Whether a stored value is one of the cache's entries, of any format version (every version has these two). */
function isAnyVersionOfEntry(value: unknown): boolean {
  const fields = value as { version?: unknown; kind?: unknown }
  return typeof value === 'object' && typeof fields.version === 'number' && (fields.kind === 'response' || fields.kind === 'vary' || fields.kind === 'generation')
}
