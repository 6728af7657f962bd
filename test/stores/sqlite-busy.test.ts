// https://github.com/undici-http-cache/issues/16 (part 8): a SqliteStore shared with other processes never
// makes the event loop wait for the file's write lock. Another connection holds the lock here (BEGIN
// IMMEDIATE), as a writing process would, for far longer than any store call may take.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { fetch } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import { SqliteStore, type ResponseEntry } from '../../lib/index.js'
import { MAX_WAITING_KEYS } from '../../lib/stores/pending-writes.js'
import { createTestAgent } from '../helpers/agent.js'
import { statusOf } from '../helpers/cache-status.js'
import { fetchText as get } from '../helpers/request.js'
import { openStore, rowsInFile, temporaryDatabase } from '../helpers/sqlite-file.js'
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
    const store = openStore({ path })
    const other = openStore({ path }) // reads the file only: another process
    const agent = createTestAgent({ store })
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

    // Each write was done once accepted; it waited off the request path, then was dropped (counted, like
    // an eviction) or made once the lock was free.
    expect([agent.cache.stats.stored, agent.cache.stats.errors]).toEqual([21, 0])
    await expect.poll(() => other.keys().length + store.droppedWrites, { timeout: 10_000 }).toBe(21)
  }, 20_000)

  it('reads its own writes while they wait, is done with them at once, and makes them once the lock is free', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path })
    const other = openStore({ path }) // reads the file only: another process
    store.set('deleted', responseEntry(1))
    const lock = holdWriteLock(path)

    expect(store.set('written', responseEntry(2))).toBeUndefined() // accepted: done, not a promise of the commit
    expect(store.delete('deleted')).toBeUndefined()
    expect((store.get('written') as ResponseEntry).headers.etag).toBe('"2"')
    expect(store.get('deleted')).toBeUndefined() // an invalidation is never undone by the older row
    expect(store.keys()).toEqual(['written'])
    expect(other.get('written')).toBeUndefined()
    expect(other.get('deleted')).toBeDefined()

    lock.release()
    await expect.poll(() => other.get('deleted')).toBeUndefined()
    expect((other.get('written') as ResponseEntry).headers.etag).toBe('"2"')
    expect(store.droppedWrites).toBe(0)
  })

  // Issue #17: one transaction of 512 KiB per retry fell behind 64 responses of 64 KiB per turn, and new
  // sets were refused once 4 MiB waited.
  it('makes every write in wait at the first retry that finds the lock free, not one transaction of them', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path })
    const lock = holdWriteLock(path)
    for (let index = 0; index < 12; index++) store.set(`key${index}`, responseEntry(index, { body: new Uint8Array(100 * 1024) }))
    lock.release()
    // A retry runs in the timers phase, this check after it in the same turn: it sees what one retry made.
    while (rowsInFile(path) === 0) await new Promise((resolve) => setImmediate(resolve))
    expect(rowsInFile(path)).toBe(12)
  })

  // Issue #16 part 8: the cache answers coalesced waiters once the leader's write is done, and a write in
  // wait is done once accepted (this process reads it), not once the file has it: they never wait for a
  // lock another process holds, nor for the 0.5 s after which a write is dropped.
  it.each(['request', 'fetch'] as const)('answers coalesced %s() callers while another connection holds the lock', async (api) => {
    const path = temporaryDatabase()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const store = openStore({ path })
    const agent = createTestAgent({ store })
    const lock = holdWriteLock(path)
    const timer = setTimeout(() => lock.release(), 3_000) // without the fix the waiters wait for the drop
    onTestFinished(() => clearTimeout(timer))

    const call = async () => {
      if (api === 'request') return (await get(`${origin.url}coalesced`, agent)).body
      return (await fetch(`${origin.url}coalesced`, { dispatcher: agent })).text()
    }
    const bodies = await Promise.all(Array.from({ length: 5 }, call))
    expect(lock.released).toBe(false) // all answered before the lock was released...
    expect(agent.cache.stats.errors).toBe(0) // ...and before the leader's write was dropped
    expect([bodies, origin.requests]).toEqual([['v1', 'v1', 'v1', 'v1', 'v1'], 1])
  })
})

// Review 2 of issue #16 part 8, findings 6 and 7: what waits for the lock is never lost while it may still be made.
describe('SqliteStore deletions while another connection holds the lock', () => {
  it.each(['delete', 'clear'] as const)(
    'never serves again a row after %s(), however long the lock is held, and removes it once the lock is free',
    async (call) => {
      const path = temporaryDatabase()
      const store = openStore({ path })
      const other = openStore({ path }) // reads the file only: another process
      store.set('key', responseEntry(1))
      const lock = holdWriteLock(path) // a long write elsewhere (stalls of 0.3-0.9 s were measured)

      if (call === 'delete') store.delete('key')
      else store.clear()
      store.set('dropped', responseEntry(2)) // a set beside it, given up on after 0.5 s
      await expect.poll(() => store.droppedWrites).toBe(1) // the set only: the deletion still waits
      expect(store.get('key')).toBeUndefined()
      expect(store.keys()).toEqual([])

      lock.release()
      await expect.poll(() => other.get('key')).toBeUndefined()
    },
  )

  it('leaves a deletion in wait standing when the set that replaced it is dropped', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path })
    const other = openStore({ path })
    store.set('key', responseEntry(1))
    const lock = holdWriteLock(path)

    store.delete('key') // an invalidation (RFC 9111 §4.4)...
    store.set('key', responseEntry(2)) // ...then a newer response, dropped
    await expect.poll(() => store.droppedWrites).toBe(1)
    expect(store.get('key')).toBeUndefined() // not the invalidated row

    lock.release()
    await expect.poll(() => other.get('key')).toBeUndefined()
  })

  it(`waits to clear the file instead once ${MAX_WAITING_KEYS} keys wait, so that deletions stay bounded`, async () => {
    const path = temporaryDatabase()
    const store = openStore({ path })
    const other = openStore({ path })
    store.set('kept until now', responseEntry(1))
    const lock = holdWriteLock(path)

    for (let index = 0; index < MAX_WAITING_KEYS; index++) store.delete(`deleted ${index}`)
    expect(store.get('kept until now')).toBeDefined()
    store.delete('one deletion too many')
    expect(store.get('kept until now')).toBeUndefined()
    expect(store.keys()).toEqual([])

    lock.release()
    await expect.poll(() => other.keys()).toEqual([])
  })

  it('counts a set it drops once in droppedWrites, as an eviction, not in stats.errors', async () => {
    const path = temporaryDatabase()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const store = openStore({ path })
    const agent = createTestAgent({ store })
    const lock = holdWriteLock(path)

    await get(`${origin.url}dropped`, agent)
    await expect.poll(() => store.droppedWrites).toBe(1)
    lock.release()
    await get(`${origin.url}stored`, agent)
    expect([store.droppedWrites, agent.cache.stats.stored, agent.cache.stats.errors]).toEqual([1, 2, 0])
    expect(statusOf((await get(`${origin.url}dropped`, agent)).headers)).toBe('miss') // gone, as if evicted
    expect(statusOf((await get(`${origin.url}stored`, agent)).headers)).toBe('hit')
  })
})

describe('SqliteStore.close() with writes in wait', () => {
  it('makes every write in wait once the lock is free, not only the first 512 KiB of them', () => {
    const path = temporaryDatabase()
    const store = new SqliteStore({ path, maxSize: 64 * 1024 * 1024, maxEntrySize: 1024 * 1024 })
    const lock = holdWriteLock(path)
    const body = new Uint8Array(300 * 1024).fill(97)
    for (const index of [1, 2, 3]) store.set(`key-${index}`, responseEntry(index, { body }))
    lock.release()
    store.close() // before the retry timer came
    const reopened = openStore({ path })
    expect(reopened.keys().sort()).toEqual(['key-1', 'key-2', 'key-3'])
  })

  it('tries the lock again, though a call before it found the lock taken', () => {
    const path = temporaryDatabase()
    const store = new SqliteStore({ path })
    const lock = holdWriteLock(path)
    store.set('key', responseEntry(1))
    expect(store.size).toBeGreaterThanOrEqual(0) // makes what waits first: finds the lock taken
    lock.release()
    store.close() // before the retry timer came
    expect([openStore({ path }).keys(), store.droppedWrites]).toEqual([['key'], 0])
  })
})

// Review 2 of issue #16 part 8, finding 10. The child imports the built package (npm run build).
describe('a process whose writes wait for a busy SqliteStore file', () => {
  it('is done with them at once and exits, without waiting for the lock to be released', async () => {
    const path = temporaryDatabase()
    openStore({ path }).set('key', responseEntry(1)) // the tables exist: the child opens the file without a lock
    const script = `
      import { once } from 'node:events'
      import { SqliteStore } from 'undici-http-cache'
      const store = new SqliteStore({ path: ${JSON.stringify(path)} })
      console.log('open')
      await once(process.stdin, 'data') // the lock is held from here on
      process.stdin.destroy()
      console.log(String(store.set('new', store.get('key'))), String(store.delete('key')))
    `
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { cwd: root })
    onTestFinished(() => void child.kill())
    let stdout = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.pipe(process.stderr)
    const exited = once(child, 'exit')
    await expect.poll(() => stdout, { timeout: 10_000 }).toContain('open')
    const lock = holdWriteLock(path)
    const timer = setTimeout(() => lock.release(), 8_000) // long after the child may take to give up
    onTestFinished(() => clearTimeout(timer))
    child.stdin.write('go\n')

    const [code] = await exited
    expect(lock.released).toBe(false)
    expect([code, stdout.trim().split('\n').at(-1)]).toEqual([0, 'undefined undefined'])
  }, 30_000)
})
