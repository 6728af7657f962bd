import { performance } from 'node:perf_hooks'
import { debuglog } from 'node:util'
import type { CacheEntry } from './store.js'

/** A write a store has accepted for a key: an entry (encoded already, with its size), or the key's deletion. */
export type Write = { entry: CacheEntry; encoded: Uint8Array; size: number } | { entry: undefined }

/** What the store can do with the writes now: `'done'`, or `'busy'` when another connection holds the lock. */
export type Attempt = (writes: ReadonlyMap<string, Write>, clearFirst: boolean) => 'done' | 'busy'

interface Queued {
  write: Write
  /** `performance.now()` when accepted: a test's fake `Date` must not age a write. */
  queuedAt: number
  /** A set that replaced a deletion in wait: if the set is dropped, the deletion stands again. */
  replacedDeletion: boolean
}

/** Why accepted writes were dropped: the lock stayed taken, the store closed first, or the write failed. */
type DropKind = 'busy' | 'closed' | 'failed'

const log = debuglog('undici-http-cache')

/** The first retry of a busy write comes after this; each next one waits twice as long, up to the next. */
const FIRST_RETRY_MS = 1
const LONGEST_RETRY_MS = 32
/** A set still not made this long after it was accepted is dropped, and counted (`dropped`). Never a deletion or clear. */
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
 * the event loop (issue #16). The first write of a turn of the event loop is tried at once; those after it
 * in the same turn wait for its end and are made together, in one transaction (issue #17: a commit costs
 * far more than a row, and 64 requests in flight end many responses per turn). While another connection
 * holds the lock a write waits here and is retried on a timer, never on a request's path, with whatever
 * else waits (oldest first, in transactions of up to `BYTES_PER_TRANSACTION`). Meanwhile this process reads its own writes from here,
 * so that a write in wait is never hidden behind the older row, nor a deletion undone while it waits; so
 * a write is done for its caller once accepted (issue #16 part 8: a caller that awaited the commit held
 * coalesced requests up to `GIVE_UP_AFTER_MS`). After `GIVE_UP_AFTER_MS` a set is dropped, like an
 * eviction, and counted in `dropped`. A deletion (an invalidation, RFC 9111 §4.4) or a clear is retried
 * until it is made, however long that takes (review 2, finding 6): dropped, the deleted row would be
 * served again. Bounded in bytes: past `maxBytes` in wait, a new set is refused at once (it throws, so the
 * cache counts it "not stored"); and in keys (`MAX_WAITING_KEYS`).
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
  #dropped = 0
  /** A write was made at once in this turn of the event loop: further ones wait for its end, to be made in one transaction. */
  #madeThisTurn = false
  /**
   * An attempt found the lock taken since the last retry: what waits is not tried again before the next,
   * or a deletion per call would try (and build a batch of) every write in wait, 10,000 deletions in 10 s.
   */
  #foundBusy = false
  readonly #loggedDrops = new Set<DropKind>()

  constructor(attempt: Attempt, maxBytes: number) {
    this.#attempt = attempt
    this.#maxBytes = maxBytes
  }

  /** Accepted writes never made: sets the lock held up too long, what `close()` could not make, and failed transactions. */
  get dropped(): number {
    return this.#dropped
  }

  /**
   * Makes the write now if the lock is free and nothing waits before it, or accepts it to be made later
   * (it replaces one in wait for the same key). Throws, and accepts nothing, when the set would take
   * waiting writes past `maxBytes`.
   */
  write(key: string, write: Write): void {
    if (this.#madeThisTurn && this.#gathers(write)) return this.#queue(key, write)
    if (this.#waits() || this.#attempt(new Map([[key, write]]), false) !== 'done') return this.#queue(key, write)
    if (this.#madeThisTurn) return
    this.#madeThisTurn = true
    setImmediate(this.#endTurn)
  }

  /**
   * Whether a write after the first of a turn waits for the turn's end. Not a deletion (an invalidation,
   * RFC 9111 §4.4): it is made at once, after what gathered, so that other processes stop serving the
   * entry at once. And once a transaction's worth has gathered, that is made now, so that what a turn
   * gathers is never refused as if the lock held it up.
   */
  #gathers(write: Write): boolean {
    if (write.entry === undefined || (this.#queued.size > 0 && this.#bytes + write.size > BYTES_PER_TRANSACTION)) this.makeWaiting()
    return write.entry !== undefined
  }

  /**
   * Makes what waits now, if the lock is free: for a caller about to read the file, which must find it as
   * this process will have left it (see `SqliteStore.get`), or to count what it holds.
   */
  makeWaiting(): void {
    while (!this.#foundBusy && this.#waits() && this.#flushBatch() === 'done');
  }

  /** Bytes of sets in wait: what they will add to the file's clock of bytes written once made. */
  get waitingBytes(): number {
    return this.#bytes
  }

  /** The turn of the event loop in which a write was made at once is over: what gathered since is made now, together. */
  readonly #endTurn = (): void => {
    this.#madeThisTurn = false
    this.#flush()
  }

  #queue(key: string, write: Write): void {
    const size = write.entry === undefined ? 0 : write.size
    const replaced = this.#queued.get(key)
    if (replaced === undefined && this.#bytes + size > this.#maxBytes && this.#queued.size > 0) {
      throw new Error(`database busy, and ${this.#bytes} bytes of writes already wait: not stored`)
    }
    if (replaced === undefined && write.entry === undefined && this.#queued.size >= MAX_WAITING_KEYS) return this.#clearInstead()
    if (replaced !== undefined) this.#remove(key, replaced)
    const replacedDeletion = write.entry !== undefined && replaced !== undefined && (replaced.write.entry === undefined || replaced.replacedDeletion)
    this.#queued.set(key, { write, queuedAt: this.#queuedNow(), replacedDeletion })
    this.#bytes += size
    if (!this.#madeThisTurn) this.#flushSoon() // else made with the turn's others when it ends (#endTurn)
  }

  /** Drops every write in wait (superseded, not counted as dropped) and clears the file, now or later. */
  clear(): void {
    for (const [key, queued] of this.#queued) this.#remove(key, queued)
    if (this.#clear === undefined && this.#attempt(new Map(), true) === 'done') return
    this.#queueClear()
  }

  /**
   * Replaces the deletions in wait with a clear of the file, which they are part of, once `MAX_WAITING_KEYS`
   * wait: bounded, and no deleted row is ever served again. The sets in wait stay, to be made after the clear.
   */
  #clearInstead(): void {
    for (const [key, queued] of this.#queued) if (queued.write.entry === undefined) this.#remove(key, queued)
    this.#queueClear()
  }

  #queueClear(): void {
    this.#clear ??= { write: { entry: undefined }, queuedAt: this.#queuedNow(), replacedDeletion: false }
    this.#flushSoon()
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
    this.#foundBusy = false // the last chance: the lock may be free since a call found it taken
    this.makeWaiting()
    const left = this.#queued.size + (this.#clear === undefined ? 0 : 1)
    this.#queued.clear()
    this.#bytes = 0
    this.#clear = undefined
    if (left > 0) this.#drop('closed', left, 'store closed while another connection held the database lock')
  }

  #waits(): boolean {
    return this.#queued.size > 0 || this.#clear !== undefined
  }

  #queuedNow(): number {
    this.#lastQueuedAt = performance.now()
    return this.#lastQueuedAt
  }

  /**
   * The retry timer keeps the process alive only while a set may still be made, at most `GIVE_UP_AFTER_MS`
   * after the last write, so that a program that exits without `close()` loses no write to a short lock;
   * then a process whose deletions still wait for a busy file exits rather than wait for the lock (review
   * 2, finding 10).
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
    this.#foundBusy = false
    if (!this.#waits()) return
    if (this.#flushBatch() === 'done') {
      this.#retryMs = FIRST_RETRY_MS
      // The lock is free: the rest too, now, as each would have been made at once. One batch per retry
      // fell behind 64 responses of 64 KiB ending per turn, until new sets were refused (issue #17).
      this.makeWaiting()
    } else {
      this.#giveUp(performance.now() - GIVE_UP_AFTER_MS)
      this.#retryMs = Math.min(this.#retryMs * 2, LONGEST_RETRY_MS)
    }
    if (this.#waits()) this.#flushSoon()
  }

  /** Tries the next batch: `'done'` when it was made, or failed (then dropped), `'busy'` when it must wait. */
  #flushBatch(): 'done' | 'busy' {
    const batch = this.#nextBatch()
    let outcome: 'done' | 'busy'
    try {
      outcome = this.#attempt(new Map([...batch].map(([key, { write }]) => [key, write])), this.#clear !== undefined)
    } catch (error) {
      this.#drop('failed', this.#finish(batch), String(error))
      return 'done'
    }
    if (outcome === 'done') this.#finish(batch)
    else this.#foundBusy = true
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

  /** Takes the writes of `batch`, and the clear, which went first, out of wait; returns how many they were. */
  #finish(batch: Map<string, Queued>): number {
    for (const [key, queued] of batch) this.#remove(key, queued)
    const finished = batch.size + (this.#clear === undefined ? 0 : 1)
    this.#clear = undefined
    return finished
  }

  /**
   * Drops the sets accepted at or before `acceptedBy` (a `performance.now()` time), leaving the deletion a
   * set replaced. Deletions and the clear stay, and are retried.
   */
  #giveUp(acceptedBy: number): void {
    let dropped = 0
    for (const [key, queued] of this.#queued) {
      if (queued.queuedAt > acceptedBy || queued.write.entry === undefined) continue
      this.#remove(key, queued)
      dropped++
      if (queued.replacedDeletion) this.#queued.set(key, { ...queued, write: { entry: undefined }, replacedDeletion: false })
    }
    this.#gaveUpTo = acceptedBy
    if (dropped > 0) this.#drop('busy', dropped, `another connection held the database lock for ${GIVE_UP_AFTER_MS} ms`)
  }

  /** Counts accepted writes that will never be made, and logs the first drop of each kind. */
  #drop(kind: DropKind, count: number, reason: string): void {
    this.#dropped += count
    if (this.#loggedDrops.has(kind)) return
    this.#loggedDrops.add(kind)
    log('SqliteStore dropped %d accepted write(s): %s (counted in droppedWrites; further drops of this kind are not logged)', count, reason)
  }

  #remove(key: string, queued: Queued): void {
    this.#queued.delete(key)
    this.#bytes -= queued.write.entry === undefined ? 0 : queued.write.size
  }
}
