// Issue #16, part 1: a shared cache replayed one caller's Set-Cookie to the next caller, a different user.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fetch, request } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import { MemoryStore, SqliteStore, type CacheStore } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { startValidatingOrigin } from './helpers/validating-origin.js'
import { removeDatabaseDirectory } from './helpers/sqlite-file.js'

/** An origin that sets a cookie for each user it answers (`session=user1`, `session=user2`, …), storable for a minute. */
function startCookieOrigin(): Promise<Origin> {
  let count = 0
  return startOrigin((_request, response) => {
    count++
    response.writeHead(200, {
      'cache-control': 'max-age=60',
      'set-cookie': [`session=user${count}; HttpOnly`, `theme=user${count}`],
      'set-cookie2': `legacy=user${count}`,
      'x-kept': 'yes',
    })
    response.end(`body ${count}`)
  })
}

/** Every entry a store holds, as text, read through the store itself. */
async function storedText(store: CacheStore): Promise<string> {
  const entries = []
  for await (const key of await store.keys()) entries.push(await store.get(key))
  return JSON.stringify(entries)
}

function temporaryDatabase(): string {
  const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-set-cookie-'))
  onTestFinished(() => removeDatabaseDirectory(directory))
  return join(directory, 'cache.db')
}

describe('Set-Cookie in shared mode', () => {
  it('reaches the caller whose request went to the origin, and never the next caller (request())', async () => {
    const origin = await startCookieOrigin()
    const agent = createTestAgent({ shared: true })
    const first = await get(origin.url, agent)
    const second = await get(origin.url, agent)
    expect(first.headers['set-cookie']).toEqual(['session=user1; HttpOnly', 'theme=user1'])
    expect(first.headers['set-cookie2']).toBe('legacy=user1')
    expect([statusOf(second.headers), second.body, second.headers['x-kept']]).toEqual(['hit', 'body 1', 'yes'])
    expect(second.headers['set-cookie']).toBeUndefined()
    expect(second.headers['set-cookie2']).toBeUndefined()
    expect(origin.requests).toBe(1)
  })

  it('reaches the caller whose request went to the origin, and never the next caller (fetch())', async () => {
    const origin = await startCookieOrigin()
    const agent = createTestAgent({ shared: true })
    const first = await fetch(origin.url, { dispatcher: agent })
    await first.text()
    const second = await fetch(origin.url, { dispatcher: agent })
    expect(await second.text()).toBe('body 1')
    expect(first.headers.getSetCookie()).toEqual(['session=user1; HttpOnly', 'theme=user1'])
    expect(statusOf(second.headers)).toBe('hit')
    expect(second.headers.getSetCookie()).toEqual([])
    expect(second.headers.get('set-cookie2')).toBeNull()
    expect(origin.requests).toBe(1)
  })

  it.each([
    ['MemoryStore', () => ({ store: new MemoryStore(), file: undefined })],
    ['SqliteStore', () => {
      const file = temporaryDatabase()
      return { store: new SqliteStore({ path: file }), file }
    }],
  ])('is never written to the store (%s)', async (_name, open) => {
    const { store, file } = open()
    const origin = await startCookieOrigin()
    const agent = createTestAgent({ shared: true, store })
    await get(origin.url, agent)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('hit') // it was stored
    const text = await storedText(store)
    expect(text).toContain('x-kept')
    expect(text).not.toMatch(/set-cookie|user1/i)
    if (file === undefined) return
    // What the file itself holds, read by another instance, and its bytes, the write-ahead log's too.
    const reader = new SqliteStore({ path: file })
    onTestFinished(() => reader.close())
    expect(await storedText(reader)).toContain('x-kept')
    expect(await storedText(reader)).not.toMatch(/set-cookie|user1/i)
    for (const path of [file, `${file}-wal`]) {
      if (existsSync(path)) expect(readFileSync(path).includes('user1')).toBe(false)
    }
  })

  it('is not put into the stored entry by a 304, which gives it to its own caller only', async () => {
    const origin = await startValidatingOrigin({
      body: 'representation',
      etag: '"a"',
      headers: { 'cache-control': 'no-cache' }, // revalidated on every use
      notModifiedHeaders: { 'set-cookie': 'session=bob' },
    })
    const store = new MemoryStore()
    const agent = createTestAgent({ shared: true, store })
    await get(origin.url, agent) // stored
    const revalidated = await get(origin.url, agent)
    expect([statusOf(revalidated.headers), revalidated.body, revalidated.headers['set-cookie']]).toEqual(['revalidated', 'representation', 'session=bob'])
    expect(await storedText(store)).not.toMatch(/set-cookie|bob/i)
    origin.representation = { ...origin.representation, notModifiedHeaders: {} }
    const next = await get(origin.url, agent)
    expect([statusOf(next.headers), next.headers['set-cookie']]).toEqual(['revalidated', undefined])
    expect(origin.statuses).toEqual([200, 304, 304])
  })

  it('is not replayed from an entry that holds it (stored by a private cache on the same store)', async () => {
    const origin = await startCookieOrigin()
    const store = new MemoryStore()
    await get(origin.url, createTestAgent({ store })) // a private cache stores the cookie
    const shared = createTestAgent({ shared: true, store })
    const response = await get(origin.url, shared)
    expect([statusOf(response.headers), response.body, response.headers['set-cookie']]).toEqual(['miss', 'body 2', ['session=user2; HttpOnly', 'theme=user2']])
    const hit = await get(origin.url, shared)
    expect([statusOf(hit.headers), hit.body, hit.headers['set-cookie']]).toEqual(['hit', 'body 2', undefined])
    expect(await storedText(store)).not.toMatch(/set-cookie/i)
  })

  // Review of issue #16 part 1: what many callers share never carries the cookie one of them was set.
  it('reaches only the caller whose coalesced revalidation the 304 setting it answered', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((incoming, response) => {
      if (incoming.headers['if-none-match'] !== undefined) {
        const notModified = { etag: '"A"', 'set-cookie': 'session=alice; HttpOnly', 'cache-control': 'max-age=60' }
        return void setTimeout(() => response.writeHead(304, notModified).end(), 200) // the others wait on it meanwhile
      }
      response.writeHead(200, { etag: '"A"', 'cache-control': 'max-age=60' }).end('A')
    })
    const agent = createTestAgent({ shared: true })
    await get(origin.url, agent)
    clock.advance(61_000)
    const answers = await Promise.all(Array.from({ length: 5 }, () => get(origin.url, agent)))
    expect(answers.map((answer) => answer.body)).toEqual(['A', 'A', 'A', 'A', 'A'])
    expect(answers.filter((answer) => answer.headers['set-cookie'] !== undefined)).toHaveLength(1)
    expect(origin.requests).toBe(2)
    for await (const entry of agent.cache.entries()) expect(JSON.stringify({ ...entry, body: undefined })).not.toMatch(/alice/)
  })

  it('is not stored by a stale-while-revalidate refresh, which answers nobody', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((_incoming, response) => {
      const headers = { 'set-cookie': `session=user${origin.requests}`, 'cache-control': 'max-age=60, stale-while-revalidate=600' }
      response.writeHead(200, headers).end(`v${origin.requests}`)
    })
    const agent = createTestAgent({ shared: true })
    expect((await get(origin.url, agent)).headers['set-cookie']).toBe('session=user1')
    clock.advance(61_000)
    const stale = await get(origin.url, agent)
    expect([stale.body, stale.headers['set-cookie']]).toEqual(['v1', undefined])
    await expect.poll(() => origin.requests).toBe(2)
    await expect.poll(async () => (await get(origin.url, agent, { headers: { 'cache-control': 'only-if-cached' } })).body).toBe('v2')
    const hit = await get(origin.url, agent)
    expect([hit.body, hit.headers['set-cookie']]).toEqual(['v2', undefined])
  })

  // Review of issue #16 part 1: inspection agrees with what the shared cache serves.
  it('is never shown by inspection: an entry holding it (stored by a private cache) is not listed, as it is not served', async () => {
    const origin = await startCookieOrigin()
    const store = new MemoryStore()
    const privateCache = createTestAgent({ store })
    await get(origin.url, privateCache) // a private cache on the same store keeps user1's cookie
    const shared = createTestAgent({ shared: true, store })
    expect(await shared.cache.get(origin.url)).toBeUndefined()
    const listed = []
    for await (const entry of shared.cache.entries()) listed.push(entry)
    expect(listed).toEqual([])
    expect(await shared.cache.urls()).toEqual([])
    expect(await privateCache.cache.urls()).toEqual([origin.url]) // still there for the private cache that stored it
    expect(await shared.cache.delete(origin.url)).toBe(1) // and the shared cache's maintenance still reaches it
  })
})

describe('Set-Cookie in private mode', () => {
  it('is stored and replayed: one user\'s cache may give them their own cookie', async () => {
    const origin = await startCookieOrigin()
    const agent = createTestAgent()
    await get(origin.url, agent)
    const hit = await request(origin.url, { dispatcher: agent })
    await hit.body.text()
    expect(statusOf(hit.headers)).toBe('hit')
    expect(hit.headers['set-cookie']).toEqual(['session=user1; HttpOnly', 'theme=user1'])
    expect(hit.headers['set-cookie2']).toBe('legacy=user1')
  })
})
