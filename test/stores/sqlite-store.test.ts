import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { entrySize, SqliteStore } from '../../lib/index.js'
import { createTestAgent, useFakeDate } from '../helpers/agent.js'
import { statusOf } from '../helpers/cache-status.js'
import { startOrigin } from '../helpers/origin.js'
import { startVersionedOrigin } from '../helpers/versioned-origin.js'
import { fetchText as get } from '../helpers/request.js'
import { openStore, removeDatabaseDirectory, rowsInFile, temporaryDatabase } from '../helpers/sqlite-file.js'
import type { ResponseEntry } from '../../lib/index.js'
import { describeStoreContract, responseEntry } from './contract.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Runs a script in another Node process, importing the built package; resolves to its stdout. */
function runProcess(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { cwd: root })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`exit ${code}: ${stderr}`))))
  })
}

describeStoreContract('SqliteStore (file)', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-sqlite-'))
  const store = new SqliteStore({ path: join(directory, 'cache.db'), maxEntrySize: 256 * 1024 })
  return { store, close: async () => (store.close(), removeDatabaseDirectory(directory)) }
})

describeStoreContract('SqliteStore (:memory:)', async () => {
  const store = new SqliteStore({ path: ':memory:', maxEntrySize: 256 * 1024 })
  return { store, close: async () => store.close() }
})

describe('SqliteStore', () => {
  it('survives a restart: another process opening the file serves what this one stored', async () => {
    const path = temporaryDatabase()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const store = new SqliteStore({ path })
    await get(origin.url, createTestAgent({ store }))
    store.close()
    const output = await runProcess(`
      import { request } from 'undici'
      import { CachingAgent, SqliteStore, cacheInfo } from 'undici-http-cache'
      const store = new SqliteStore({ path: ${JSON.stringify(path)} })
      const agent = new CachingAgent({ store })
      const response = await request(${JSON.stringify(origin.url)}, { dispatcher: agent, headers: { 'cache-control': 'only-if-cached' } })
      console.log(cacheInfo(response.headers).status, await response.body.text())
      await agent.close(); store.close()
    `)
    expect(output.trim()).toBe('hit v1')
    expect(origin.requests).toBe(1)
  })

  it('opens a file another connection holds locked by waiting for it, not failing', async () => {
    const path = temporaryDatabase()
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite')
    const holder = new sqlite.DatabaseSync(path) // a new file, in rollback-journal mode: opening must switch it to WAL
    holder.exec('CREATE TABLE other (x); BEGIN EXCLUSIVE; INSERT INTO other VALUES (1)')
    setTimeout(() => (holder.exec('COMMIT'), holder.close()), 300)
    const output = await runProcess(`
      import { SqliteStore } from 'undici-http-cache'
      const store = new SqliteStore({ path: ${JSON.stringify(path)} })
      console.log(store.keys().length)
      store.close()
    `)
    expect(output.trim()).toBe('0')
  })

  it('is shared safely by two processes writing and reading the same keys at once', async () => {
    const path = temporaryDatabase()
    new SqliteStore({ path }).close() // create the tables before the writers race
    const writer = (id: number) => `
      import { SqliteStore } from 'undici-http-cache'
      const store = new SqliteStore({ path: ${JSON.stringify(path)} })
      const entry = (version) => ({
        version: 3, kind: 'response', method: 'GET', url: 'http://127.0.0.1/' + version % 10, requestHeaders: {},
        status: 200, statusText: 'OK', headers: { etag: '"' + version + '"', 'cache-control': 'max-age=600' },
        body: Buffer.from(String(version).repeat(2000)), createdAt: Date.now(), initialAgeSeconds: 0, lifetimeSeconds: 600, policy: {},
      })
      let reads = 0
      for (let i = 0; i < 400; i++) {
        const version = ${id} * 1000 + i
        store.set('key' + (i % 10), entry(version))
        const read = store.get('key' + ((i + 5) % 10))
        if (read === undefined) continue
        const written = read.headers.etag.slice(1, -1)
        if (Buffer.from(read.body).toString() !== written.repeat(2000)) throw new Error('torn entry for version ' + written)
        reads++
      }
      store.close()
      console.log(reads)
    `
    const [first, second] = await Promise.all([runProcess(writer(1)), runProcess(writer(2))])
    expect(Number(first) + Number(second)).toBeGreaterThan(700)
    const store = openStore({ path })
    expect(store.keys().sort()).toEqual(['key0', 'key1', 'key2', 'key3', 'key4', 'key5', 'key6', 'key7', 'key8', 'key9'])
  }, 30_000)

  it('serves what another process wrote since, not what this one decoded before', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path })
    store.set('shared', responseEntry(1))
    expect(((store.get('shared') as ResponseEntry).headers.etag)).toBe('"1"') // decoded, and kept for hits
    await runProcess(`
      import { SqliteStore } from 'undici-http-cache'
      const store = new SqliteStore({ path: ${JSON.stringify(path)} })
      const entry = store.get('shared')
      store.set('shared', { ...entry, headers: { ...entry.headers, etag: '"2"' } })
      store.close()
    `)
    expect(((store.get('shared') as ResponseEntry).headers.etag)).toBe('"2"')
  })

  // Issue #17: a burst of misses commits once per turn of the event loop, not once per response.
  it('makes the first write of a turn at once, and those after it together when the turn ends', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path })
    for (let index = 0; index < 10; index++) store.set(`key${index}`, responseEntry(index))
    expect(rowsInFile(path)).toBe(1)
    expect((store.get('key9') as ResponseEntry).headers.etag).toBe('"9"') // this process reads them meanwhile
    await new Promise((resolve) => setImmediate(resolve))
    expect(rowsInFile(path)).toBe(10)
  })

  it('stores every response a turn ends, however many bytes they add up to', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path }) // 8 MiB of writes may wait for a busy file: these are not held up by one
    for (let index = 0; index < 12; index++) store.set(`key${index}`, responseEntry(index, { body: new Uint8Array(1024 * 1024) }))
    await new Promise((resolve) => setImmediate(resolve))
    expect([rowsInFile(path), store.droppedWrites]).toEqual([12, 0])
  })

  it('evicts the least recently used entries past maxSize, not the oldest written, and counts them', () => {
    const clock = useFakeDate()
    const entry = (version: number) => responseEntry(version, { body: new Uint8Array(3000) })
    const size = entrySize(entry(1))
    const store = openStore({ maxSize: 3 * size + 100, maxEntrySize: size + 100 }) // room for three
    for (const key of ['a', 'b', 'c']) {
      store.set(key, entry(1))
      clock.advance(2_000)
    }
    store.get('a') // used: now the most recent
    clock.advance(2_000)
    store.set('d', entry(2))
    expect(store.keys().sort()).toEqual(['a', 'c', 'd'])
    expect(store.evictions).toBe(1)
    expect(store.size).toBeLessThanOrEqual(3 * size + 100)
  })

  it('reports its evictions in stats.evicted', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600', 'content-type': 'text/plain' })
    const store = openStore({ maxSize: 7_000, maxEntrySize: 4_000 }) // room for two of these responses (3.2 KB each)
    const agent = createTestAgent({ store })
    for (const path of ['a', 'b', 'c', 'd']) await get(`${origin.url}${path}`, agent)
    expect(agent.cache.stats).toMatchObject({ stored: 4, evicted: 2 })
    expect(await agent.cache.urls()).toEqual([`${origin.url}c`, `${origin.url}d`])
    expect(store.size).toBeLessThanOrEqual(7_000)
  })

  it('counts a row by the bytes it takes when they are more than the entry counts (escaped, non-ASCII headers)', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path, maxSize: 100_000 })
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'x-meta': '"'.repeat(6_000) }).end()
    })
    const agent = createTestAgent({ store })
    for (let index = 0; index < 40; index++) await get(`${origin.url}${index}`, agent)
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite')
    const database = new sqlite.DatabaseSync(path)
    const { bytes } = database.prepare('SELECT sum(length(value)) AS bytes FROM entries_v3').get() as { bytes: number }
    database.close()
    expect(bytes).toBeLessThanOrEqual(100_000)
    expect(store.size).toBeGreaterThanOrEqual(bytes)
  })

  it('purges an entry it finds of no use any longer (stale, no stale window, no validator)', async () => {
    const clock = useFakeDate()
    const origin = await startVersionedOrigin((count) => (count === 1 ? { 'cache-control': 'max-age=1' } : { 'cache-control': 'max-age=1', etag: '"x"' }))
    const store = openStore()
    const agent = createTestAgent({ store })
    await get(`${origin.url}plain`, agent)
    await get(`${origin.url}validated`, agent)
    clock.advance(5_000)
    expect(store.keys()).toHaveLength(2)
    expect(await agent.cache.urls()).toEqual([`${origin.url}validated`]) // the plain one was purged as it was read
    expect(statusOf((await get(`${origin.url}plain`, agent)).headers)).toBe('miss')
    expect(await agent.cache.delete({ expired: true })).toBe(1) // the validated one, stale now
  })

  it('stays within maxSize when another connection writes the file too, counting its rows as well', async () => {
    const path = temporaryDatabase()
    const size = entrySize(responseEntry(1))
    const [first, second] = [openStore({ path, maxSize: 3 * size + 100 }), openStore({ path, maxSize: 3 * size + 100 })] // room for three
    for (const [index, store] of [first, second, first, second, first].entries()) {
      store.set(`key ${index}`, responseEntry(index))
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(rowsInFile(path)).toBe(3)
    expect([first.size, second.size, first.evictions + second.evictions]).toEqual([first.size, first.size, 2])
    expect(first.size).toBeLessThanOrEqual(3 * size + 100)
  })

  it('purges the entries of no use as writes go by, on its worker, once a quarter of maxSize is written', async () => {
    const path = temporaryDatabase()
    const store = openStore({ path, maxSize: 60_000, maxEntrySize: 10_000 })
    // Of no use since an hour ago (the cache would have said so for a response stale since then, without a
    // validator or a stale window), though never read again.
    const past = { createdAt: Date.now() - 3_660_000, usefulUntil: Date.now() - 3_600_000 }
    store.set('gone', responseEntry(1, past))
    store.set('kept', responseEntry(2))
    await new Promise((resolve) => setImmediate(resolve)) // the turn's writes made
    expect(rowsInFile(path)).toBe(2)
    for (let index = 3; index < 13; index++) store.set(`written ${index}`, responseEntry(index)) // past 15,000 bytes
    await expect.poll(() => rowsInFile(path)).toBe(11)
    expect(store.keys()).not.toContain('gone')
    expect(store.size).toBe(openStore({ path }).size) // counted again, as the worker deleted a row
  })

  it("purges by the entry's usefulUntil alone, and an entry that does not say 30 days after it was made", async () => {
    const store = openStore()
    const now = Date.now()
    // Fields that say fresh for a year: the entry's usefulUntil decides, not HTTP.
    store.set('over', responseEntry(1, { createdAt: now - 60_000, usefulUntil: now - 1_000, headers: { 'cache-control': 'max-age=31536000' } }))
    store.set('of use', responseEntry(2, { createdAt: now - 60_000, usefulUntil: now + 60_000, headers: { 'cache-control': 'max-age=0' } }))
    const undated = (version: number, days: number): ResponseEntry => {
      const entry = responseEntry(version, { createdAt: now - days * 24 * 3600 * 1000 })
      delete entry.usefulUntil // stored before entries said
      return entry
    }
    store.set('undated, 31 days old', undated(3, 31))
    store.set('undated, 29 days old', undated(4, 29))
    await new Promise((resolve) => setImmediate(resolve)) // the turn's writes made
    const found = (key: string) => store.get(key) !== undefined
    expect(['over', 'of use', 'undated, 31 days old', 'undated, 29 days old'].map(found)).toEqual([false, true, false, true])
  })

  it('keeps an entry the staleIfError option may still serve, and serves it when the origin fails', async () => {
    const clock = useFakeDate()
    let failing = false
    const origin = await startOrigin((_request, response) => {
      if (failing) return void response.writeHead(503).end('down')
      response.writeHead(200, { 'cache-control': 'max-age=1' }).end('good') // no validator, no stale window
    })
    const agent = createTestAgent({ store: openStore(), staleIfError: 600 })
    await get(origin.url, agent)
    clock.advance(5_000)
    failing = true
    const answer = await get(origin.url, agent)
    expect([answer.status, answer.body, statusOf(answer.headers)]).toEqual([200, 'good', 'stale'])
  })

  it('reads a row it cannot decode as a miss, which the response stored next replaces', async () => {
    const path = temporaryDatabase()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const store = openStore({ path })
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite')
    const database = new sqlite.DatabaseSync(path)
    database.prepare("UPDATE entries_v3 SET value = x'00000005', version = version + 1").run() // as another writer would
    database.close()
    expect((await get(origin.url, agent)).body).toBe('v2')
    expect(agent.cache.stats.errors).toBe(1)
    expect((await get(origin.url, agent)).body).toBe('v2') // stored again in its place
  })

  it('checks its options', () => {
    expect(() => new SqliteStore(undefined as never)).toThrow(new TypeError('SqliteStore options must be an object with a path, received undefined'))
    expect(() => new SqliteStore({ path: '' })).toThrow(new TypeError('SqliteStore options.path must be a file path or ":memory:", received ""'))
    expect(() => new SqliteStore({ path: ':memory:', maxSize: 10, maxEntrySize: 20 })).toThrow(
      new TypeError('SqliteStore options.maxEntrySize (20) must not exceed options.maxSize (10)'),
    )
    expect(() => new SqliteStore({ path: ':memory:', file: 'x' } as never)).toThrow(new TypeError('unknown option "file"'))
  })
})

// https://github.com/undici-http-cache/issues/16 (part 2): hits answered from the decoded entries kept in
// the process must still count as uses, or a row in constant use is evicted as if unused.
describe('SqliteStore: a hit keeps its entry from eviction', () => {
  const BODY = Buffer.alloc(16 * 1024, 'x')
  const ROOM_FOR_16 = 16 * 17 * 1024 // entries of a 16 KiB body and their headers

  async function startSixteenKibOrigin() {
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600' }).end(BODY)
    })
    return { url: origin.url, requestsFor: (path: string) => origin.received.filter((received) => received.url === path).length }
  }

  it('keeps one URL requested after every 4th new URL while 200 new URLs go by', async () => {
    const origin = await startSixteenKibOrigin()
    const agent = createTestAgent({ store: openStore({ maxSize: ROOM_FOR_16 }) })
    await get(`${origin.url}hot`, agent)
    for (let index = 1; index <= 200; index++) {
      await get(`${origin.url}new/${index}`, agent)
      if (index % 4 === 0) await get(`${origin.url}hot`, agent)
    }
    expect(origin.requestsFor('/hot')).toBe(1)
    expect(agent.cache.stats.evicted).toBeGreaterThan(150) // the bound held: the new URLs came and went
  })

  it('keeps an entry another store object on the same file keeps using, as another process would', async () => {
    const origin = await startSixteenKibOrigin()
    const path = temporaryDatabase()
    const writer = createTestAgent({ store: openStore({ path, maxSize: ROOM_FOR_16 }) })
    const reader = createTestAgent({ store: openStore({ path, maxSize: ROOM_FOR_16 }) })
    await get(`${origin.url}hot`, reader)
    for (let index = 1; index <= 200; index++) {
      await get(`${origin.url}new/${index}`, writer)
      if (index % 4 === 0) await get(`${origin.url}hot`, reader)
    }
    expect(origin.requestsFor('/hot')).toBe(1)
    expect(reader.cache.stats.hits).toBe(50)
  })
})
