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

      const deletion = call === 'delete' ? store.delete('key') : store.clear()
      await expect(deletion).rejects.toThrow(/not made yet/) // reported late once, so the cache counts it
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

    void store.delete('key') // an invalidation (RFC 9111 §4.4)...
    await expect(store.set('key', responseEntry(2))).rejects.toThrow(/not stored/) // ...then a newer response, dropped
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

    for (let index = 0; index < MAX_WAITING_KEYS; index++) void store.delete(`deleted ${index}`)
    expect(store.get('kept until now')).toBeDefined()
    void store.delete('one deletion too many')
    expect(store.get('kept until now')).toBeUndefined()
    expect(store.keys()).toEqual([])

    lock.release()
    await expect.poll(() => other.keys()).toEqual([])
  })

  it('counts a set it drops once in stats.errors, and not as stored', async () => {
    const path = temporaryDatabase()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const agent = createTestAgent({ store: openStore({ path }) })
    const lock = holdWriteLock(path)

    await get(`${origin.url}dropped`, agent)
    await expect.poll(() => agent.cache.stats.errors).toBe(1)
    lock.release()
    await get(`${origin.url}stored`, agent)
    await expect.poll(() => agent.cache.stats.stored).toBe(1)
    expect(agent.cache.stats.errors).toBe(1)
  })
})

describe('SqliteStore.close() with writes in wait', () => {
  it('makes every write in wait once the lock is free, not only the first 512 KiB of them', () => {
    const path = temporaryDatabase()
    const store = new SqliteStore({ path, maxSize: 64 * 1024 * 1024, maxEntrySize: 1024 * 1024 })
    const lock = holdWriteLock(path)
    const body = new Uint8Array(300 * 1024).fill(97)
    for (const index of [1, 2, 3]) void store.set(`key-${index}`, responseEntry(index, { body }))
    lock.release()
    store.close() // before the retry timer came
    const reopened = openStore({ path })
    expect(reopened.keys().sort()).toEqual(['key-1', 'key-2', 'key-3'])
  })
})

// Review 2 of issue #16 part 8, finding 10. The child imports the built package (npm run build).
describe('a process whose writes wait for a busy SqliteStore file', () => {
  it('settles their promises and exits, without waiting for the lock to be released', async () => {
    const path = temporaryDatabase()
    openStore({ path }).set('key', responseEntry(1)) // the tables exist: the child opens the file without a lock
    const script = `
      import { once } from 'node:events'
      import { SqliteStore } from 'undici-http-cache'
      const store = new SqliteStore({ path: ${JSON.stringify(path)} })
      console.log('open')
      await once(process.stdin, 'data') // the lock is held from here on
      process.stdin.destroy()
      const outcomes = await Promise.allSettled([store.set('new', store.get('key')), store.delete('key')])
      console.log(outcomes.map((outcome) => outcome.status).join(' '))
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
    expect([code, stdout.trim().split('\n').at(-1)]).toEqual([0, 'rejected rejected'])
  }, 30_000)
})
