import { debuglog } from 'node:util'
import { Worker } from 'node:worker_threads'

const log = debuglog('undici-http-cache')

/** A checkpoint is asked for after this many bytes written by this process: about SQLite's own 1,000 pages. */
const CHECKPOINT_EVERY_BYTES = 4 * 1024 * 1024
/**
 * A checkpoint runs again while the last pass found new frames, up to this many passes: SQLite starts the
 * WAL over only once a checkpoint has copied all of it, and one pass never does while this process writes
 * meanwhile (issue #17: the WAL grew to the TRUNCATE below, whose lock held up writes until they were
 * refused, 843 of 9,000 responses of 64 KiB with one request in flight). The next pass copies only what
 * was written during the last one, so the passes get shorter until one finds nothing new.
 */
const CHECKPOINT_PASSES = 8
/** Past this, the checkpoint also waits for readers to move on and empties the WAL file (TRUNCATE). */
const TRUNCATE_OVER_BYTES = 64 * 1024 * 1024
/** How long that wait may hold up other connections' writes (they wait in PendingWrites, not on an event loop). */
const TRUNCATE_WAIT_MS = 100
/** Keys of rows of no use deleted per transaction of a purge: each transaction holds the write lock briefly. */
const PURGE_BATCH = 256

/**
 * The worker, one per process for every store's file: a connection per store that copies the WAL into the
 * database file when asked. A PASSIVE checkpoint never waits; it cannot copy past what a reader still
 * uses, so while several processes read all the time the WAL only grows, and once it is large a TRUNCATE,
 * which waits for readers, empties it. A purge finds the rows of no use outside any transaction (the scan
 * reads the whole table, as no index serves it) and deletes them in short transactions, each row only if it
 * is still of no use then.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { DatabaseSync } = process.getBuiltinModule('node:sqlite')
const files = new Map()
function open({ path, purge }) {
  const database = new DatabaseSync(path)
  database.exec('PRAGMA busy_timeout = ' + workerData.waitMs)
  const pageSize = database.prepare('PRAGMA page_size').get().page_size
  return { database, pageSize, expired: database.prepare(purge.expired), remove: database.prepare(purge.remove) }
}
function checkpoint({ database, pageSize }) {
  let log = 0
  for (let pass = 0, previous = -1; pass < workerData.checkpointPasses && log !== previous; pass++) {
    previous = log
    ;({ log } = database.prepare('PRAGMA wal_checkpoint(PASSIVE)').get())
  }
  if (log * pageSize > workerData.truncateOverBytes) database.exec('PRAGMA wal_checkpoint(TRUNCATE)')
}
function purge({ database, expired, remove }) {
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
parentPort.on('message', ({ id, open: file, run }) => {
  if (id === undefined) return void parentPort.close() // no store uses the worker any longer
  try {
    if (file !== undefined) return void files.set(id, open(file))
    const opened = files.get(id)
    if (run === 'close') return void (files.delete(id), opened.database.close())
    if (run === 'checkpoint') checkpoint(opened)
    else purge(opened)
  } catch (error) {
    parentPort.postMessage(run + ': ' + String(error)) // busy: the next one tries again
  }
})
`

/** The statements of a purge: `expired` (?1 now, ?2 limit) selects keys of rows of no use, `remove` (?1 key, ?2 now) deletes one if still so. */
export interface PurgeStatements {
  expired: string
  remove: string
}

/**
 * The process's worker, shared by the stores (issue #17: starting one costs about 25 ms of CPU, and a
 * program that opens stores often paid it each time), and ended once none has used it for `IDLE_MS`.
 */
const IDLE_MS = 1000
let worker: Worker | undefined
let users = 0
let idleTimer: NodeJS.Timeout | undefined
let nextId = 0

function useWorker(): Worker {
  users++
  clearTimeout(idleTimer)
  if (worker !== undefined) return worker
  const workerData = {
    checkpointPasses: CHECKPOINT_PASSES,
    waitMs: TRUNCATE_WAIT_MS,
    truncateOverBytes: TRUNCATE_OVER_BYTES,
    purgeBatch: PURGE_BATCH,
  }
  const started = new Worker(WORKER_SOURCE, { eval: true, workerData })
  started.unref() // upkeep never keeps a process alive
  started.on('message', (message) => log('SqliteStore upkeep failed (the next one tries again): %s', message))
  started.on('error', (error) => log('SqliteStore upkeep worker failed: %s', error))
  started.on('exit', () => (worker = worker === started ? undefined : worker))
  worker = started
  return started
}

function leaveWorker(): void {
  if (--users > 0) return
  idleTimer = setTimeout(() => {
    worker?.postMessage({})
    worker = undefined
  }, IDLE_MS).unref()
}

/**
 * Work on a database file done on a worker thread, off the event loop (issue #16): checkpoints of its WAL
 * (SQLite would run them on the connection that commits, and one that copies a large WAL and syncs the
 * file can take far longer than the write itself; the store turns SQLite's own off, `wal_autocheckpoint =
 * 0`, and says here what it wrote) and purges of rows of no use (a scan of the whole table). The worker's
 * connection to the file opens with the first request, so a store that only reads never opens one.
 */
export class FileUpkeep {
  readonly #id = nextId++
  readonly #path: string
  readonly #purge: PurgeStatements
  /** The worker this file's connection was opened on, if any; another after a worker that failed. */
  #openedOn: Worker | undefined
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
    this.#run('checkpoint')
  }

  /** Asks for the rows of no use to be deleted. */
  purge(): void {
    this.#run('purge')
  }

  close(): void {
    if (this.#openedOn === undefined) return
    this.#openedOn.postMessage({ id: this.#id, run: 'close' })
    this.#openedOn = undefined
    leaveWorker()
  }

  #run(run: 'checkpoint' | 'purge'): void {
    if (this.#openedOn === undefined || this.#openedOn !== worker) {
      if (this.#openedOn !== undefined) users-- // its worker failed: opened again on the next
      this.#openedOn = useWorker()
      this.#openedOn.postMessage({ id: this.#id, open: { path: this.#path, purge: this.#purge } })
    }
    this.#openedOn.postMessage({ id: this.#id, run })
  }
}
