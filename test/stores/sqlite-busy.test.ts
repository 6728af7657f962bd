// https://github.com/undici-http-cache/issues/16 (part 8): a SqliteStore shared with other processes never
// makes the event loop wait for the file's write lock. Another connection holds the lock here (BEGIN
// IMMEDIATE), as a writing process would, for far longer than any store call may take.
import { fetch } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { ResponseEntry } from '../../lib/index.js'
import { createTestAgent } from '../helpers/agent.js'
import { statusOf } from '../helpers/cache-status.js'
import { fetchText as get } from '../helpers/request.js'
import { openStore, temporaryDatabase } from '../helpers/sqlite-file.js'
import { startVersionedOrigin } from '../helpers/versioned-origin.js'
import { responseEntry } from './contract.js'

/** Another connection to `path` that holds its write lock until `release()`. */
function holdWriteLock(path: string): { release(): void; readonly released: boolean } {
  const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite')
  const holder = new sqlite.DatabaseSync(path)
  holder.exec('BEGIN IMMEDIATE')
  let released = false
  const release = () => {
    if (released) return
    released = true
    holder.exec('COMMIT')
    holder.close()
  }
  onTestFinished(release)
  return {
    release,
    get released() {
      return released
    },
  }
}

describe('SqliteStore while another connection holds the write lock', () => {
  it('answers every request at once, serves what is stored, and counts the writes it could not make', async () => {
    const path = temporaryDatabase()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const agent = createTestAgent({ store: openStore({ path }) })
    await get(`${origin.url}stored`, agent)
    const lock = holdWriteLock(path)
    const timer = setTimeout(() => lock.release(), 3_000) // an order of magnitude past what a call may take
    onTestFinished(() => clearTimeout(timer))

    for (let index = 0; index < 10; index++) {
      expect((await get(`${origin.url}new/${index}`, agent)).status).toBe(200)
      expect((await fetch(`${origin.url}fetched/${index}`, { dispatcher: agent })).status).toBe(200)
    }
    const stored = await get(`${origin.url}stored`, agent)
    expect([stored.body, statusOf(stored.headers)]).toEqual(['v1', 'hit'])
    expect(lock.released).toBe(false) // no call waited for the lock, or 20 writes would have outlasted it

    // Each write waited off the request path, then was dropped (counted) or made once the lock was free.
    await expect.poll(() => agent.cache.stats.errors + agent.cache.stats.stored, { timeout: 10_000 }).toBe(21)
  }, 20_000)

  it('reads its own writes while they wait, and makes them once the lock is free', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path })
    const other = openStore({ path }) // reads the file only: another process
    store.set('deleted', responseEntry(1))
    const lock = holdWriteLock(path)

    const written = store.set('written', responseEntry(2))
    const deleted = store.delete('deleted')
    expect(written).toBeInstanceOf(Promise)
    expect((store.get('written') as ResponseEntry).headers.etag).toBe('"2"')
    expect(store.get('deleted')).toBeUndefined() // an invalidation is never undone by the older row
    expect(store.keys()).toEqual(['written'])
    expect(other.get('written')).toBeUndefined()
    expect(other.get('deleted')).toBeDefined()

    lock.release()
    await Promise.all([written, deleted])
    expect((other.get('written') as ResponseEntry).headers.etag).toBe('"2"')
    expect(other.get('deleted')).toBeUndefined()
  })
})
