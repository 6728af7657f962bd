import { debuglog } from 'node:util'
import { isPromise, type MaybePromise } from './maybe-promise.js'
import type { StatsCounters } from './stats.js'
import { decodeEntry, type CacheEntry, type CacheStore } from './store.js'

const log = debuglog('undici-http-cache')

/**
 * Wraps any store so that its failures never reach a request: a `get` that throws, rejects, takes longer
 * than `timeoutMs` or returns something that is not an entry of this version is a miss; a failed or slow
 * `set` or `delete` is "not stored". Each failure is counted in `stats.errors` and logged (once per kind
 * of failure), and each response written is counted in `stats.stored`. A synchronous store stays
 * synchronous, so a hit from memory does not wait for a promise.
 */
export class GuardedStore {
  readonly #store: CacheStore
  readonly #loggedKinds = new Set<string>()
  readonly #stats: StatsCounters
  readonly #timeoutMs: number
  /** Writes (set, delete) a promise-returning store has not finished yet. */
  readonly #writing = new Set<Promise<void>>()

  constructor(store: CacheStore, stats: StatsCounters, timeoutMs: number) {
    this.#store = store
    this.#stats = stats
    this.#timeoutMs = timeoutMs
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
    try {
      const result = this.#store.get(key)
      if (!isPromise(result)) return this.#decode(key, result)
      return this.#limit(result, 'get').then(
        (value) => this.#decode(key, value),
        (error: unknown) => this.#fail('store get', error, undefined),
      )
    } catch (error) {
      return this.#fail('store get', error, undefined)
    }
  }

  set(key: string, entry: CacheEntry): MaybePromise<void> {
    const stored = (): void => {
      if (entry.kind === 'response') this.#stats.stored++
    }
    return this.#call('set', () => this.#store.set(key, entry), stored)
  }

  delete(key: string): MaybePromise<void> {
    return this.#call('delete', () => this.#store.delete(key))
  }

  #call(kind: string, call: () => MaybePromise<void>, onDone?: () => void): MaybePromise<void> {
    try {
      const result = call()
      if (!isPromise(result)) return onDone?.()
      const written = this.#limit(result, kind).then(onDone, (error: unknown) => this.#fail(`store ${kind}`, error, undefined))
      this.#writing.add(written)
      void written.then(() => this.#writing.delete(written))
      return written
    } catch (error) {
      this.#fail(`store ${kind}`, error, undefined)
    }
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

  /** An entry of another format version is a miss, and is deleted so it does not linger. */
  #decode(key: string, value: unknown): CacheEntry | undefined {
    if (value === undefined || value === null) return undefined
    const entry = decodeEntry(value)
    if (entry === undefined) {
      this.#fail('store decode', new Error('stored value is not an entry of this format version'), undefined)
      void this.delete(key)
    }
    return entry
  }

  /**
   * Counts and logs (once per kind) a failure that the cache absorbed: a store call, or the cache's own
   * logic or a user callback failing around one request.
   */
  recordFailure(kind: string, error: unknown): void {
    this.#fail(kind, error, undefined)
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

  #fail<T>(kind: string, error: unknown, fallback: T): T {
    this.#stats.errors++
    if (!this.#loggedKinds.has(kind)) {
      this.#loggedKinds.add(kind)
      log('%s failed (further %s failures are counted, not logged): %s', kind, kind, error)
    }
    return fallback
  }
}
