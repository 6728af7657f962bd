import { performance } from 'node:perf_hooks'
import type { CacheEntry } from '../store.js'

/** A write a store has accepted for a key: an entry (encoded already, with its size), or the key's deletion. */
export type Write = { entry: CacheEntry; encoded: Uint8Array; size: number } | { entry: undefined }

/** What the store can do with the writes now: `'done'`, or `'busy'` when another connection holds the lock. */
export type Attempt = (writes: ReadonlyMap<string, Write>, clearFirst: boolean) => 'done' | 'busy'

interface Queued {
  write: Write
  /** `performance.now()` when accepted: a test's fake `Date` must not age a write. */
  queuedAt: number
  settle: Settle
  /** A set that replaced a deletion in wait: if the set is dropped, the deletion stands again. */
  replacedDeletion: boolean
}

interface Settle {
  promise: Promise<void>
  resolve(): void
  reject(error: Error): void
}

/** The first retry of a busy write comes after this; each next one waits twice as long, up to the next. */
const FIRST_RETRY_MS = 1
const LONGEST_RETRY_MS = 32
/**
 * A set still not made this long after it was accepted is dropped: "not stored", which the cache counts. A
 * deletion or clear is not dropped, but its promise rejects then, so that the cache counts it late once.
 */
const GIVE_UP_AFTER_MS = 500
/**
 * Keys that may wait: past it, a deletion of one more key waits as a clear of the file instead. Deletions
 * cost no bytes and are never dropped, so while another connection holds the lock they would pile up.
 */
export const MAX_WAITING_KEYS = 10_000
/** Bytes written per transaction when writes have gathered: a transaction is work done on the event loop. */
const BYTES_PER_TRANSACTION = 512 * 1024

/**
 * Writes to a database file that other processes write too, made without ever waiting for its lock on
 * the event loop (issue #16): each is tried at once, and while another connection holds the lock it waits
 * here and is retried on a timer, never on a request's path, with whatever else waits (oldest first, in
 * transactions of up to `BYTES_PER_TRANSACTION`); after `GIVE_UP_AFTER_MS` a set is dropped and its promise
 * rejects, so that the cache counts it "not stored". A deletion (an invalidation, RFC 9111 §4.4) or a clear
 * is retried until it is made, however long that takes (review 2, finding 6): dropped, the deleted row
 * would be served again. Meanwhile this process reads its own writes from here, so that a write in wait is
 * never hidden behind the older row, nor a deletion undone while it waits. Bounded in bytes: past
 * `maxBytes` in wait, a new set is refused at once; and in keys (`MAX_WAITING_KEYS`).
 */
export class PendingWrites {
  readonly #queued = new Map<string, Queued>()
  readonly #attempt: Attempt
  readonly #maxBytes: number
  #bytes = 0
  /** A `clear()` not made yet, which goes before every write queued after it. */
  #clear: Queued | undefined
  #timer: NodeJS.Timeout | undefined
  #retryMs = FIRST_RETRY_MS
  /** `performance.now()` when the last write (or clear) was queued, and the cut-off of the last give-up. */
  #lastQueuedAt = -Infinity
  #gaveUpTo = -Infinity

  constructor(attempt: Attempt, maxBytes: number) {
    this.#attempt = attempt
    this.#maxBytes = maxBytes
  }

  /**
   * Makes the write now if the lock is free and nothing waits before it (then returns nothing), or queues
   * it and returns a promise that settles when it is made or given up on (a deletion given up on is still
   * retried). A write replaces one in wait for the same key, whose promise resolves (it was superseded).
   */
  write(key: string, write: Write): Promise<void> | undefined {
    if (this.#queued.size === 0 && this.#clear === undefined && this.#attempt(new Map([[key, write]]), false) === 'done') return undefined
    const size = write.entry === undefined ? 0 : write.size
    const replaced = this.#queued.get(key)
    if (replaced === undefined && this.#bytes + size > this.#maxBytes && this.#queued.size > 0) {
      const refused = deferred()
      refused.reject(new Error(`database busy, and ${this.#bytes} bytes of writes already wait: not stored`))
      return refused.promise
    }
    if (replaced === undefined && write.entry === undefined && this.#queued.size >= MAX_WAITING_KEYS) return this.#clearInstead()
    if (replaced !== undefined) this.#remove(key, replaced).settle.resolve()
    const replacedDeletion = write.entry !== undefined && replaced !== undefined && (replaced.write.entry === undefined || replaced.replacedDeletion)
    const queued: Queued = { write, queuedAt: this.#queuedNow(), settle: deferred(), replacedDeletion }
    this.#queued.set(key, queued)
    this.#bytes += size
    this.#flushSoon()
    return queued.settle.promise
  }

  /** Drops every write in wait (superseded: their promises resolve) and queues the clearing of the file. */
  clear(): Promise<void> | undefined {
    for (const [key, queued] of this.#queued) this.#remove(key, queued).settle.resolve()
    if (this.#clear === undefined && this.#attempt(new Map(), true) === 'done') return undefined
    return this.#queueClear()
  }

  /**
   * Replaces the deletions in wait with a clear of the file, which they are part of (their promises resolve),
   * once `MAX_WAITING_KEYS` wait: bounded, and no deleted row is ever served again. The sets in wait stay,
   * to be made after the clear.
   */
  #clearInstead(): Promise<void> {
    for (const [key, queued] of this.#queued) if (queued.write.entry === undefined) this.#remove(key, queued).settle.resolve()
    return this.#queueClear()
  }

  #queueClear(): Promise<void> {
    this.#clear ??= { write: { entry: undefined }, queuedAt: this.#queuedNow(), settle: deferred(), replacedDeletion: false }
    this.#flushSoon()
    return this.#clear.settle.promise
  }

  /** What this process wrote for `key` and has not made yet: `{ entry }` (undefined for a deletion), or nothing. */
  lookup(key: string): { entry: CacheEntry | undefined } | undefined {
    const queued = this.#queued.get(key)
    if (queued !== undefined) return { entry: queued.write.entry }
    return this.#clear === undefined ? undefined : { entry: undefined }
  }

  /** Keys in the file as this process will have left them: `keysInFile` less what waits to be deleted, plus what waits to be set. */
  keys(keysInFile: () => string[]): string[] {
    const keys = new Set(this.#clear === undefined ? keysInFile() : [])
    for (const [key, { write }] of this.#queued) {
      if (write.entry === undefined) keys.delete(key)
      else keys.add(key)
    }
    return [...keys]
  }

  /**
   * Makes what waits, batch after batch, while the lock is free (review 2, finding 7), then drops what
   * still waits: a closing store never waits for the lock.
   */
  close(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    while (this.#waits() && this.#flushBatch() === 'done');
    const error = new Error('store closed while another connection held the database lock: not stored')
    for (const [key, queued] of this.#queued) this.#remove(key, queued).settle.reject(error)
    this.#clear?.settle.reject(error)
    this.#clear = undefined
  }

  #waits(): boolean {
    return this.#queued.size > 0 || this.#clear !== undefined
  }

  #queuedNow(): number {
    this.#lastQueuedAt = performance.now()
    return this.#lastQueuedAt
  }

  /**
   * The retry timer keeps the process alive only while a write's promise may still be awaited, at most
   * `GIVE_UP_AFTER_MS` after the last write: so `await agent.close()` settles, and then a process whose
   * deletions still wait for a busy file exits rather than wait for the lock (review 2, finding 10).
   */
  #flushSoon(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined
      this.#flush()
    }, this.#retryMs)
    if (this.#lastQueuedAt <= this.#gaveUpTo) this.#timer.unref()
    else this.#timer.ref()
  }

  /** Tries the writes in wait, oldest first, up to `BYTES_PER_TRANSACTION` at a time, and comes back while any wait. */
  #flush(): void {
    if (!this.#waits()) return
    if (this.#flushBatch() === 'done') this.#retryMs = FIRST_RETRY_MS
    else {
      this.#giveUp(performance.now() - GIVE_UP_AFTER_MS)
      this.#retryMs = Math.min(this.#retryMs * 2, LONGEST_RETRY_MS)
    }
    if (this.#waits()) this.#flushSoon()
  }

  /** Tries the next batch: `'done'` when it was made, or failed (its promises reject), `'busy'` when it must wait. */
  #flushBatch(): 'done' | 'busy' {
    const batch = this.#nextBatch()
    let outcome: 'done' | 'busy'
    try {
      outcome = this.#attempt(new Map([...batch].map(([key, { write }]) => [key, write])), this.#clear !== undefined)
    } catch (error) {
      this.#settle(batch, (settle) => settle.reject(error as Error))
      return 'done'
    }
    if (outcome === 'done') this.#settle(batch, (settle) => settle.resolve())
    return outcome
  }

  #nextBatch(): Map<string, Queued> {
    const batch = new Map<string, Queued>()
    let bytes = 0
    for (const [key, queued] of this.#queued) {
      bytes += queued.write.entry === undefined ? 0 : queued.write.size
      if (batch.size > 0 && bytes > BYTES_PER_TRANSACTION) break
      batch.set(key, queued)
    }
    return batch
  }

  /** Settles the writes of `batch`, and the clear, which went first. */
  #settle(batch: Map<string, Queued>, settle: (settle: Settle) => void): void {
    const settled = [...batch].map(([key, queued]) => this.#remove(key, queued))
    const clear = this.#clear
    this.#clear = undefined
    for (const { settle: pending } of clear === undefined ? settled : [...settled, clear]) settle(pending)
  }

  /**
   * Drops the sets accepted at or before `acceptedBy` (a `performance.now()` time), leaving the deletion a
   * set replaced; rejects the promises of the deletions and clear accepted by then, which stay and are
   * retried. A promise settles once, so a write is counted once however many give-ups it sees.
   */
  #giveUp(acceptedBy: number): void {
    const dropped = new Error('database busy (another connection holds its write lock): not stored')
    const late = new Error('database busy (another connection holds its write lock): deletion not made yet, retried until it is')
    for (const [key, queued] of this.#queued) {
      if (queued.queuedAt > acceptedBy) continue
      if (queued.write.entry === undefined) queued.settle.reject(late)
      else {
        this.#remove(key, queued).settle.reject(dropped)
        if (queued.replacedDeletion) this.#queued.set(key, { ...queued, write: { entry: undefined }, replacedDeletion: false })
      }
    }
    if (this.#clear !== undefined && this.#clear.queuedAt <= acceptedBy) this.#clear.settle.reject(late)
    this.#gaveUpTo = acceptedBy
  }

  #remove(key: string, queued: Queued): Queued {
    this.#queued.delete(key)
    this.#bytes -= queued.write.entry === undefined ? 0 : queued.write.size
    return queued
  }
}

/** A promise settled from outside; a caller that does not wait for its write sees no unhandled rejection. */
function deferred(): Settle {
  let resolve!: () => void
  let reject!: (error: Error) => void
  const promise = new Promise<void>((resolveWith, rejectWith) => ((resolve = resolveWith), (reject = rejectWith)))
  promise.catch(() => undefined)
  return { promise, resolve, reject }
}
