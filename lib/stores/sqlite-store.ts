import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { decodeStoredValue, encodeEntry } from './entry-codec.js'
import { resolveSqliteStoreOptions, type SqliteStoreOptions } from './store-options.js'
import { entrySize, retainUntil, type CacheEntry, type CacheStore } from './store.js'
import { DecodedEntries } from './decoded-entries.js'
import { PendingWrites, type Write } from './pending-writes.js'
import { FileUpkeep } from './file-upkeep.js'

/**
 * The table layout's version, part of the table names: a release that changes the layout uses new tables,
 * so an older release sharing the file keeps its own and neither misreads the other's rows.
 */
const SCHEMA = 'v3'
const ENTRIES = `entries_${SCHEMA}`

/**
 * A hit records its use (moves its row to the recent end) only once this share of `maxSize` has been
 * written since the use last recorded (issue #16): the row cannot have come near eviction before, and hits
 * write at most a few times per `maxSize` written rather than on every hit.
 */
const USE_RECORD_SHARE = 1 / 4
/**
 * How long opening the file waits for another process (switching to WAL, creating the tables). Once open,
 * no call waits for a lock: see PendingWrites.
 */
const OPEN_WAIT_MS = 5000
/** Bytes of decoded entries kept in this process for hits on hot rows (see DecodedEntries). */
const DECODED_BYTES = 4 * 1024 * 1024
/** Bytes of writes that may wait for the lock in this process; past it, a write is not stored. */
const PENDING_BYTES = 4 * 1024 * 1024
/** Rows evicted per statement: enough to make room, small enough to keep a write short. */
const BATCH = 16
/** Rows of no use are purged each time this process has written this share of `maxSize` (a scan of the whole table). */
const PURGE_SHARE = 1 / 4

const SQLITE_BUSY = 5

/**
 * A persistent store in an SQLite file (node:sqlite): entries survive restarts, and several processes may
 * share one file (WAL journal, a transaction per write or per batch of writes). Bounded in bytes: past
 * `maxSize` the least recently used entries are evicted. Entries past their `usefulUntil` (which the cache
 * works out: stale, past their stale windows, and without a validator to revalidate with) are purged when
 * read and as writes go by. Calls are synchronous, so a hit never waits for the event loop, and none waits for a
 * lock (issue #16): a read never needs one (WAL), and a write another process holds up waits in
 * `PendingWrites`, off the event loop, and is done for its caller once accepted.
 */
export class SqliteStore implements CacheStore {
  readonly maxSize: number
  readonly maxEntrySize: number
  readonly #database: DatabaseSync
  readonly #statements: Record<
    'select' | 'value' | 'sizeOf' | 'upsert' | 'remove' | 'keys' | 'clear' | 'total' | 'dataVersion' | 'leastRecent' | 'recordUse',
    StatementSync
  >
  readonly #decoded: DecodedEntries
  readonly #pending: PendingWrites
  /** The worker that checkpoints and purges the file; none for `:memory:`, which purges on its own connection. */
  readonly #upkeep: FileUpkeep | undefined
  #evictions = 0
  /**
   * Bytes in the file's entries, counted in this process rather than in a row every write updates (issue
   * #17: that row was a page more in the log per commit). Exact while the file's `data_version` is
   * `#countedAt`: it changes when another connection commits, never for this one's own commits.
   */
  #total = 0
  #countedAt: number | undefined
  /** Bytes this process wrote since it last purged the rows of no use. */
  #writtenSincePurge = 0

  constructor(options: SqliteStoreOptions) {
    const resolved = resolveSqliteStoreOptions(options)
    this.maxSize = resolved.maxSize
    this.maxEntrySize = resolved.maxEntrySize
    // node:sqlite is loaded here, not at import, so that importing this package works where it is missing.
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite') | undefined
    if (sqlite === undefined) throw new TypeError('SqliteStore needs node:sqlite (Node >= 22.13)')
    this.#database = new sqlite.DatabaseSync(resolved.path)
    // The busy timeout first: switching to WAL and creating the tables take locks another process may hold.
    // Then none: from here on a busy file is never waited for on the event loop, and checkpoints, which
    // SQLite would run on the committing connection, run on a worker (FileUpkeep).
    // A write touches as few pages as it can (issue #17): the row, its key in the primary key's index, and
    // the used_at index (with size, so that counting the bytes reads the index alone). No index on
    // useful_until: the rare purge scans the table, on the worker. The value last, so that reading the
    // other columns of a row never follows the value's overflow pages.
    this.#database.exec(`
      PRAGMA busy_timeout = ${OPEN_WAIT_MS};
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS ${ENTRIES} (
        key TEXT PRIMARY KEY, version INTEGER NOT NULL, size INTEGER NOT NULL, used_at INTEGER NOT NULL,
        useful_until INTEGER NOT NULL, value BLOB NOT NULL
      );
      CREATE INDEX IF NOT EXISTS ${ENTRIES}_used_at ON ${ENTRIES} (used_at, size);
      PRAGMA busy_timeout = 0;
      PRAGMA wal_autocheckpoint = 0;
    `)
    // used_at is a clock of bytes written, kept in the rows themselves (the highest used_at is "now"): a
    // write stamps its row with now plus its size, a recorded use with now. So LRU order holds across
    // processes and whatever the wall clock, and a row knows how many bytes were written since its last use.
    const now = `(SELECT coalesce(max(used_at), 0) FROM ${ENTRIES})`
    const prepare = (sql: string) => this.#database.prepare(sql)
    this.#statements = {
      select: prepare(`SELECT version, used_at, useful_until, ${now} AS now FROM ${ENTRIES} WHERE key = ?`),
      value: prepare(`SELECT value FROM ${ENTRIES} WHERE key = ? AND version = ?`),
      sizeOf: prepare(`SELECT size FROM ${ENTRIES} WHERE key = ?`),
      upsert: prepare(`
        INSERT INTO ${ENTRIES} (key, value, version, size, used_at, useful_until) VALUES (?1, ?2, ?3, ?4, ${now} + ?4, ?5)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, size = excluded.size,
          used_at = excluded.used_at, useful_until = excluded.useful_until
      `),
      remove: prepare(`DELETE FROM ${ENTRIES} WHERE key = ? RETURNING size`),
      keys: prepare(`SELECT key FROM ${ENTRIES}`),
      clear: prepare(`DELETE FROM ${ENTRIES}`),
      total: prepare(`SELECT coalesce(sum(size), 0) AS size FROM ${ENTRIES}`),
      dataVersion: prepare('PRAGMA data_version'),
      leastRecent: prepare(`SELECT key FROM ${ENTRIES} WHERE key != ? ORDER BY used_at LIMIT ${BATCH}`),
      recordUse: prepare(`UPDATE ${ENTRIES} SET used_at = ${now} WHERE key = ?`),
    }
    this.#decoded = new DecodedEntries(Math.min(DECODED_BYTES, this.maxSize))
    this.#pending = new PendingWrites((writes, clearFirst) => this.#write(writes, clearFirst), Math.max(PENDING_BYTES, this.maxEntrySize))
    const purge = {
      expired: `SELECT key FROM ${ENTRIES} WHERE useful_until < ?1 LIMIT ?2`,
      remove: `DELETE FROM ${ENTRIES} WHERE key = ?1 AND useful_until < ?2`,
    }
    this.#upkeep = resolved.path === ':memory:' ? undefined : new FileUpkeep(resolved.path, purge)
  }

  /** Entries evicted by this store object to stay within `maxSize` (other processes count their own). */
  get evictions(): number {
    this.#pending.makeWaiting()
    return this.#evictions
  }

  /**
   * Writes this store object accepted (so its process read them, and the cache counted them in
   * `stats.stored`) that never reached the file: a set still held up by another process's write lock
   * 0.5 s after it was accepted, writes still waiting when `close()` found the lock taken, and writes whose
   * transaction failed (not for the lock: a full disk, say). Like an
   * eviction, a dropped entry is a later miss. Logged through `NODE_DEBUG=undici-http-cache`, once per kind.
   */
  get droppedWrites(): number {
    return this.#pending.dropped
  }

  /** Bytes held in the file's entries now, as counted against `maxSize`. */
  get size(): number {
    this.#pending.makeWaiting()
    return this.#fileSize()
  }

  get(key: string): CacheEntry | undefined {
    const pending = this.#pending.lookup(key)
    if (pending !== undefined) return pending.entry
    const row = this.#statements.select.get(key) as { version: number; used_at: number; useful_until: number; now: number } | undefined
    if (row === undefined) return undefined
    if (row.useful_until < Date.now()) {
      this.#decoded.forget(key)
      this.#writeIfFree(() => this.#remove(key)) // of no use any longer: purged as it is found
      return undefined
    }
    // Recorded for hits from `#decoded` too, or a row in constant use would be evicted as unused (issue #16).
    // The sets in wait count as written, and are made first, so that the use is stamped after them.
    if (row.now + this.#pending.waitingBytes - row.used_at > this.maxSize * USE_RECORD_SHARE) {
      this.#pending.makeWaiting()
      this.#writeIfFree(() => this.#statements.recordUse.run(key))
    }
    const decoded = this.#decoded.get(key, row.version)
    if (decoded !== undefined) return decoded
    // Written again between the two reads: the next get will see the new row.
    const value = this.#statements.value.get(key, row.version) as { value: Uint8Array } | undefined
    if (value === undefined) return undefined
    const entry = decodeStoredValue(value.value)
    this.#decoded.remember(key, row.version, entry)
    return entry
  }

  /**
   * Writes the entry, or, while another process holds the file's write lock, accepts it to be written on a
   * retry: done either way, as this process reads it from then on (see `droppedWrites` for one that never
   * reaches the file). Throws when too many bytes of writes wait already: not stored.
   */
  set(key: string, entry: CacheEntry): void {
    this.#decoded.forget(key)
    const encoded = encodeEntry(entry)
    // The larger of what the entry counts in memory and what its row takes: JSON escapes quotes and writes
    // non-ASCII header text in two bytes, so a row can be larger than the entry counts.
    const size = Math.max(entrySize(entry), encoded.byteLength)
    if (size > this.maxEntrySize) return this.delete(key) // a newer, too large response leaves no older one
    this.#pending.write(key, { entry, encoded, size })
  }

  /** Deletes the entry, now or, while another process holds the lock, on a retry until it is made. */
  delete(key: string): void {
    this.#decoded.forget(key)
    this.#pending.write(key, { entry: undefined })
  }

  keys(): string[] {
    this.#pending.makeWaiting()
    return this.#pending.keys(() => (this.#statements.keys.all() as Array<{ key: string }>).map((row) => row.key))
  }

  clear(): void {
    this.#decoded.clear()
    this.#pending.clear()
  }

  close(): void {
    if (!this.#database.isOpen) return
    this.#pending.close()
    this.#upkeep?.close()
    this.#database.close()
  }

  /**
   * Makes `writes` in one transaction, or says `'busy'` at once when another connection holds the write
   * lock: BEGIN IMMEDIATE takes it or fails, as the busy timeout is 0.
   */
  #write(writes: ReadonlyMap<string, Write>, clearFirst: boolean): 'done' | 'busy' {
    try {
      this.#database.exec('BEGIN IMMEDIATE')
    } catch (error) {
      if (isBusy(error)) return 'busy'
      throw error
    }
    let bytes = 0
    try {
      this.#fileSize() // counted again first if another connection committed since
      if (clearFirst) this.#statements.clear.run()
      if (clearFirst) this.#total = 0
      for (const [key, write] of writes) {
        if (write.entry === undefined) this.#remove(key)
        else this.#upsert(key, write)
        bytes += write.entry === undefined ? 0 : write.size
      }
      this.#purgeEvery(bytes)
      this.#database.exec('COMMIT')
    } catch (error) {
      this.#database.exec('ROLLBACK')
      this.#countedAt = undefined // what this transaction counted was undone
      if (isBusy(error)) return 'busy'
      throw error
    }
    this.#upkeep?.wrote(bytes)
    return 'done'
  }

  #upsert(key: string, { entry, encoded, size }: Write & { entry: CacheEntry }): void {
    const replaced = this.#statements.sizeOf.get(key) as { size: number } | undefined
    // A random version per write, so that every process can tell a row it decoded from one written since.
    const version = Math.floor(Math.random() * Number.MAX_SAFE_INTEGER)
    this.#statements.upsert.run(key, encoded, version, size, retainUntil(entry))
    this.#total += size - (replaced?.size ?? 0)
    this.#evictOver(key)
  }

  #remove(key: string): void {
    const removed = this.#statements.remove.get(key) as { size: number } | undefined
    if (removed !== undefined) this.#total -= removed.size
  }

  /**
   * Purges the rows of no use each `PURGE_SHARE` of `maxSize` this process writes: on the worker, or, for
   * `:memory:`, which no other connection can open, here in the transaction.
   */
  #purgeEvery(bytes: number): void {
    this.#writtenSincePurge += bytes
    if (this.#writtenSincePurge < this.maxSize * PURGE_SHARE) return
    this.#writtenSincePurge = 0
    if (this.#upkeep !== undefined) return this.#upkeep.purge()
    const rows = this.#database.prepare(`SELECT key FROM ${ENTRIES} WHERE useful_until < ?`).all(Date.now()) as Array<{ key: string }>
    for (const { key } of rows) this.#remove(key)
  }

  /** A write a read makes in passing: skipped, not waited for, while another connection holds the write lock. */
  #writeIfFree(write: () => void): void {
    try {
      write()
    } catch (error) {
      if (!isBusy(error)) throw error
    }
  }

  /** Evicts least recently used entries (never the one just written) until the file is within `maxSize`. */
  #evictOver(keep: string): void {
    while (this.#total > this.maxSize) {
      const victims = this.#statements.leastRecent.all(keep) as Array<{ key: string }>
      if (victims.length === 0) return
      for (const { key } of victims) {
        this.#remove(key)
        this.#evictions++
        if (this.#total <= this.maxSize) return
      }
    }
  }

  /**
   * The bytes in the file's entries: `#total`, counted again (from the used_at index alone) when another
   * connection (another process, or the purging worker) has committed since it was counted.
   */
  #fileSize(): number {
    const { data_version: version } = this.#statements.dataVersion.get() as { data_version: number }
    if (version !== this.#countedAt) {
      this.#total = Number((this.#statements.total.get() as { size: number }).size)
      this.#countedAt = version
    }
    return this.#total
  }
}

function isBusy(error: unknown): boolean {
  return (error as { errcode?: number }).errcode === SQLITE_BUSY
}
