import { debuglog } from 'node:util'
import { Worker } from 'node:worker_threads'

const log = debuglog('undici-http-cache')

/** A checkpoint is asked for after this many bytes written by this process: about SQLite's own 1,000 pages. */
const CHECKPOINT_EVERY_BYTES = 4 * 1024 * 1024
/** Past this, the checkpoint also waits for readers to move on and empties the WAL file (TRUNCATE). */
const TRUNCATE_OVER_BYTES = 64 * 1024 * 1024
/** How long that wait may hold up other connections' writes (they wait in PendingWrites, not on an event loop). */
const TRUNCATE_WAIT_MS = 100

/**
 * The worker: a connection of its own that copies the WAL into the database file when asked. A PASSIVE
 * checkpoint never waits; it cannot copy past what a reader still uses, so while several processes read all
 * the time the WAL only grows, and once it is large a TRUNCATE, which waits for readers, empties it.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { DatabaseSync } = process.getBuiltinModule('node:sqlite')
const database = new DatabaseSync(workerData.path)
database.exec('PRAGMA busy_timeout = ' + workerData.waitMs)
const pageSize = database.prepare('PRAGMA page_size').get().page_size
parentPort.on('message', (message) => {
  if (message === 'close') return void (database.close(), parentPort.close())
  try {
    const { log } = database.prepare('PRAGMA wal_checkpoint(PASSIVE)').get()
    if (log * pageSize > workerData.truncateOverBytes) database.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  } catch (error) {
    parentPort.postMessage(String(error)) // busy: the next checkpoint tries again
  }
})
`

/**
 * Checkpoints of a WAL file, run on a worker thread (issue #16): SQLite would run them on the connection
 * that commits, on the event loop, and one that copies a large WAL and syncs the file can take far longer
 * than the write itself. The store turns SQLite's own off (`wal_autocheckpoint = 0`) and says here what it
 * wrote; the worker starts with the first checkpoint, so a store that only reads never starts one.
 */
export class WalCheckpoints {
  readonly #path: string
  #worker: Worker | undefined
  #writtenBytes = 0

  constructor(path: string) {
    this.#path = path
  }

  /** Counts bytes committed by this process, and asks for a checkpoint every `CHECKPOINT_EVERY_BYTES`. */
  wrote(bytes: number): void {
    this.#writtenBytes += bytes
    if (this.#writtenBytes < CHECKPOINT_EVERY_BYTES) return
    this.#writtenBytes = 0
    this.#start().postMessage('checkpoint')
  }

  close(): void {
    this.#worker?.postMessage('close')
    this.#worker = undefined
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker
    const workerData = { path: this.#path, waitMs: TRUNCATE_WAIT_MS, truncateOverBytes: TRUNCATE_OVER_BYTES }
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData })
    worker.unref() // checkpoints never keep a process alive
    worker.on('message', (message) => log('SqliteStore checkpoint failed (the next one tries again): %s', message))
    worker.on('error', (error) => log('SqliteStore checkpoint worker failed: %s', error))
    this.#worker = worker
    return worker
  }
}
