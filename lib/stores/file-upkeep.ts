import { debuglog } from 'node:util'
import { Worker } from 'node:worker_threads'

const log = debuglog('undici-http-cache')

/** A checkpoint is asked for after this many bytes written by this process: about SQLite's own 1,000 pages. */
const CHECKPOINT_EVERY_BYTES = 4 * 1024 * 1024
/** Past this, the checkpoint also waits for readers to move on and empties the WAL file (TRUNCATE). */
const TRUNCATE_OVER_BYTES = 64 * 1024 * 1024
/** How long that wait may hold up other connections' writes (they wait in PendingWrites, not on an event loop). */
const TRUNCATE_WAIT_MS = 100
/** Keys of rows of no use deleted per transaction of a purge: each transaction holds the write lock briefly. */
const PURGE_BATCH = 256

/**
 * The worker: a connection of its own that copies the WAL into the database file when asked. A PASSIVE
 * checkpoint never waits; it cannot copy past what a reader still uses, so while several processes read all
 * the time the WAL only grows, and once it is large a TRUNCATE, which waits for readers, empties it.
 * A purge finds the rows of no use outside any transaction (the scan reads the whole table, as no index
 * serves it) and deletes them in short transactions, each row only if it is still of no use then.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { DatabaseSync } = process.getBuiltinModule('node:sqlite')
const database = new DatabaseSync(workerData.path)
database.exec('PRAGMA busy_timeout = ' + workerData.waitMs)
const pageSize = database.prepare('PRAGMA page_size').get().page_size
const expired = database.prepare(workerData.purge.expired)
const remove = database.prepare(workerData.purge.remove)
function checkpoint() {
  const { log } = database.prepare('PRAGMA wal_checkpoint(PASSIVE)').get()
  if (log * pageSize > workerData.truncateOverBytes) database.exec('PRAGMA wal_checkpoint(TRUNCATE)')
}
function purge() {
  for (let keys = []; ; ) {
    const now = Date.now()
    keys = expired.all(now, workerData.purgeBatch).map((row) => row.key)
    if (keys.length === 0) return
    database.exec('BEGIN IMMEDIATE')
    try {
      for (const key of keys) remove.run(key, now)
      database.exec('COMMIT')
    } catch (error) {
      database.exec('ROLLBACK')
      throw error
    }
    if (keys.length < workerData.purgeBatch) return
  }
}
parentPort.on('message', (message) => {
  if (message === 'close') return void (database.close(), parentPort.close())
  try {
    if (message === 'checkpoint') checkpoint()
    else purge()
  } catch (error) {
    parentPort.postMessage(message + ': ' + String(error)) // busy: the next one tries again
  }
})
`

/** The statements of a purge: `expired` (?1 now, ?2 limit) selects keys of rows of no use, `remove` (?1 key, ?2 now) deletes one if still so. */
export interface PurgeStatements {
  expired: string
  remove: string
}

/**
 * Work on a database file done on a worker thread, off the event loop (issue #16): checkpoints of its WAL
 * (SQLite would run them on the connection that commits, and one that copies a large WAL and syncs the
 * file can take far longer than the write itself; the store turns SQLite's own off, `wal_autocheckpoint =
 * 0`, and says here what it wrote) and purges of rows of no use (a scan of the whole table). The worker
 * starts with the first request, so a store that only reads never starts one.
 */
export class FileUpkeep {
  readonly #path: string
  readonly #purge: PurgeStatements
  #worker: Worker | undefined
  #writtenBytes = 0

  constructor(path: string, purge: PurgeStatements) {
    this.#path = path
    this.#purge = purge
  }

  /** Counts bytes committed by this process, and asks for a checkpoint every `CHECKPOINT_EVERY_BYTES`. */
  wrote(bytes: number): void {
    this.#writtenBytes += bytes
    if (this.#writtenBytes < CHECKPOINT_EVERY_BYTES) return
    this.#writtenBytes = 0
    this.#start().postMessage('checkpoint')
  }

  /** Asks for the rows of no use to be deleted. */
  purge(): void {
    this.#start().postMessage('purge')
  }

  close(): void {
    this.#worker?.postMessage('close')
    this.#worker = undefined
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker
    const workerData = {
      path: this.#path,
      waitMs: TRUNCATE_WAIT_MS,
      truncateOverBytes: TRUNCATE_OVER_BYTES,
      purge: this.#purge,
      purgeBatch: PURGE_BATCH,
    }
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData })
    worker.unref() // upkeep never keeps a process alive
    worker.on('message', (message) => log('SqliteStore upkeep failed (the next one tries again): %s', message))
    worker.on('error', (error) => log('SqliteStore upkeep worker failed: %s', error))
    this.#worker = worker
    return worker
  }
}
