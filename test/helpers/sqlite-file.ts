import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'
import { SqliteStore } from '../../lib/index.js'

/** A fresh database file in a temporary directory, removed when the test ends. */
export function temporaryDatabase(): string {
  const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-sqlite-'))
  onTestFinished(() => removeDatabaseDirectory(directory))
  return join(directory, 'cache.db')
}

/**
 * Removes a directory that held SQLite files. The store's upkeep worker closes its own connection after
 * `store.close()`, once the checkpoint it may be running has finished, and writes the WAL meanwhile: a file
 * appearing while the directory is removed is retried (ENOTEMPTY, seen in CI after a test that wrote 12
 * MiB, whose checkpoint outlasted 10 retries of 50 ms), for up to 5 s.
 */
export function removeDatabaseDirectory(directory: string): void {
  rmSync(directory, { recursive: true, force: true, maxRetries: 50, retryDelay: 100 })
}

/** A SqliteStore on a fresh file (unless `path` says which), closed when the test ends. */
export function openStore(options: Partial<ConstructorParameters<typeof SqliteStore>[0]> = {}): SqliteStore {
  const store = new SqliteStore({ path: temporaryDatabase(), ...options })
  onTestFinished(() => store.close())
  return store
}

/** The rows in the file at `path`, as another connection (another process) sees it now. */
export function rowsInFile(path: string): number {
  const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite')
  const database = new sqlite.DatabaseSync(path)
  try {
    return (database.prepare('SELECT count(*) AS rows FROM entries_v3').get() as { rows: number }).rows
  } finally {
    database.close()
  }
}
