import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { Agent, fetch, type Dispatcher } from 'undici'
import { describe, expect, it } from 'vitest'
import { MemoryStore, type CacheStore, type ResponseEntry } from '../lib/index.js'
import { MapStore } from './helpers/map-store.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

/** A store whose every call fails the way `fail` says. */
function failingStore(fail: () => never | Promise<never>): CacheStore {
  return { get: fail, set: fail, delete: fail, keys: fail, clear: fail }
}

describe('store failures', () => {
  it.each([
    ['throws', () => failingStore(() => { throw new Error('store is down') })],
    ['rejects', () => failingStore(() => Promise.reject(new Error('store is down')))],
  ])('a store that %s never fails the request: it goes to the origin', async (_name, makeStore) => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent({ store: makeStore() })
    const first = await get(origin.url, agent)
    const second = await get(origin.url, agent)
    expect([first.status, second.status]).toEqual([200, 200])
    expect([first.body, second.body]).toEqual(['v1', 'v2'])
    expect(statusOf(second.headers)).toBe('miss')
  })

  it('treats what is not an entry of this format version as a miss, and deletes it', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const store = new MapStore()
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const [key] = store.entries.keys()
    store.entries.set(key!, { ...(store.entries.get(key!) as object), version: 0 })
    expect((await get(origin.url, agent)).body).toBe('v2')
    expect(store.deleted).toEqual([key])
    store.entries.set(key!, 'garbage')
    expect((await get(origin.url, agent)).body).toBe('v3')
  })

  it.each([
    ['synchronous', (entry: unknown) => entry],
    ['asynchronous', (entry: unknown) => Promise.resolve(entry)],
  ])('treats a stored response with a header value that is not a string as a miss, and deletes it (%s store)', async (_name, answer) => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const store = new (class extends MapStore {
      override get(key: string) {
        return answer(super.get(key)) as ReturnType<MapStore['get']>
      }
    })()
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const [key] = store.entries.keys()
    const stored = store.entries.get(key!) as ResponseEntry
    store.entries.set(key!, { ...stored, headers: { ...stored.headers, 'x-count': 5 } })
    const second = await get(origin.url, agent)
    expect([second.body, statusOf(second.headers)]).toEqual(['v2', 'miss'])
    expect(store.deleted).toEqual([key])
    expect((await get(origin.url, agent)).body).toBe('v2') // stored again, well-formed
    expect(agent.cache.stats).toMatchObject({ hits: 1, misses: 2 })
  })

  it('sends the request on uncached when a stored response fails as it is served, and counts no hit', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    // A store that hands out frozen entries with the body in two chunks: serving joins the chunks in the entry, and fails.
    const store = new (class extends MapStore {
      override get(key: string) {
        const entry = super.get(key)
        if (entry?.kind !== 'response') return entry
        const body = entry.body as Uint8Array
        return Object.freeze({ ...entry, body: [body.subarray(0, 1), body.subarray(1)] })
      }
    })()
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const second = await get(origin.url, agent)
    expect([second.body, statusOf(second.headers)]).toEqual(['v2', 'bypass'])
    expect(agent.cache.stats).toMatchObject({ hits: 0, errors: 1 })
  })

  it('sends the request on uncached when a stale entry cannot be revalidated, and leaves no identical request waiting', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60', etag: '"1"' })
    const store = new MapStore()
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const [key] = store.entries.keys()
    // Stale, with a policy the policy library cannot read (as one written by another version of it).
    store.entries.set(key!, { ...(store.entries.get(key!) as ResponseEntry), lifetimeSeconds: 0, policy: {} })
    const responses = [await get(origin.url, agent), await get(origin.url, agent)]
    expect(responses.map((response) => [response.body, statusOf(response.headers)])).toEqual([
      ['v2', 'bypass'],
      ['v3', 'bypass'],
    ])
  })

  it('serves a stale-while-revalidate entry that cannot be revalidated, counting the failed revalidation', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60, stale-while-revalidate=600', etag: '"1"' })
    const store = new MapStore()
    let sent = 0 // requests the cache sends on, counted as it sends them
    const inner = new Agent().compose((dispatch) => (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => (sent++, dispatch(options, handler)))
    const agent = createTestAgent({ store, dispatcher: inner })
    await get(origin.url, agent)
    const [key] = store.entries.keys()
    store.entries.set(key!, { ...(store.entries.get(key!) as ResponseEntry), lifetimeSeconds: 0, policy: {} })
    const response = await get(origin.url, agent)
    expect([response.body, statusOf(response.headers)]).toEqual(['v1', 'stale'])
    expect(sent).toBe(1)
    expect(agent.cache.stats).toMatchObject({ stale: 1, errors: 1 })
  })

  it('never serves an entry stored for another URL under the same key', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const inner = new MemoryStore()
    const agent = createTestAgent({ store: inner })
    await get(`${origin.origin}/a`, agent)
    const [key] = [...inner.keys()]
    const stored = inner.get(key!) as ResponseEntry
    inner.set(key!, { ...stored, url: `${origin.origin}/other` })
    const response = await get(`${origin.origin}/a`, agent)
    expect(response.body).toBe('v2')
  })

  it('gives up on a store that hangs past storeTimeoutMs: the request goes to the origin and an error is counted', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const hanging = failingStore(() => new Promise<never>(() => {}))
    const agent = createTestAgent({ store: hanging, storeTimeoutMs: 50 })
    const responses = [await get(origin.url, agent), await get(origin.url, agent)]
    expect(responses.map((response) => response.body)).toEqual(['v1', 'v2'])
    await expect.poll(() => agent.cache.stats.errors).toBe(4) // two reads, two writes
  })

  it('logs each kind of store failure once under NODE_DEBUG=undici-http-cache, however often it happens', () => {
    const script = `
      import { createServer } from 'node:http'
      import { request } from 'undici'
      import { CachingAgent } from 'undici-http-cache'
      const fail = () => { throw new Error('store is down') }
      const server = createServer((req, res) => res.setHeader('cache-control', 'max-age=60').end('ok'))
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
      const agent = new CachingAgent({ store: { get: fail, set: fail, delete: fail, keys: fail, clear: fail } })
      for (let i = 0; i < 5; i++) await (await request('http://127.0.0.1:' + server.address().port + '/', { dispatcher: agent })).body.text()
      console.log(JSON.stringify(agent.cache.stats))
      await agent.close(); server.close()
    `
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, NODE_DEBUG: 'undici-http-cache' },
      encoding: 'utf8',
    })
    expect(JSON.parse(result.stdout)).toMatchObject({ errors: 10 })
    const logged = result.stderr.split('\n').filter((line) => line.includes('failed (further'))
    expect(logged.map((line) => line.replace(/^.*?: /, '').split(' failed')[0])).toEqual(['store get', 'store set'])
  })

  it('prints a line for each response and each response stored under NODE_DEBUG=undici-http-cache (issue #19)', () => {
    const script = `
      import { createServer } from 'node:http'
      import { request } from 'undici'
      import { CachingAgent } from 'undici-http-cache'
      const server = createServer((req, res) => res.setHeader('cache-control', 'max-age=60').end('ok'))
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
      const agent = new CachingAgent()
      const url = 'http://127.0.0.1:' + server.address().port + '/page?access_token=SECRET'
      for (let i = 0; i < 2; i++) await (await request(url, { dispatcher: agent })).body.text()
      await agent.close(); server.close()
    `
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, NODE_DEBUG: 'undici-http-cache' },
      encoding: 'utf8',
    })
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('UNDICI-HTTP-CACHE')).map((line) => line.replace(/^.*?: /, ''))
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/page\?access_token=redacted\S*: miss, 200, stored \(key [\w-]+\)$/)
    expect(lines[1]).toMatch(/^stored http:\/\/127\.0\.0\.1:\d+\/page\?access_token=redacted\S*, \d+ bytes \(key [\w-]+\)$/)
    expect(lines[2]).toMatch(/: hit, 200 \(key [\w-]+\)$/)
    expect(result.stderr).not.toContain('SECRET')
  })
})

/** A user's store that hands out every stored body changed by `damage` (cut short, run on), at once or later. */
class DamagingStore extends MapStore {
  readonly #damage: (body: Buffer) => Buffer
  readonly #answer: (entry: unknown) => unknown

  constructor(damage: (body: Buffer) => Buffer, answer: (entry: unknown) => unknown = (entry) => entry) {
    super()
    this.#damage = damage
    this.#answer = answer
  }

  override get(key: string) {
    const entry = super.get(key)
    const damaged = entry?.kind === 'response' ? { ...entry, body: this.#damage(Buffer.from(entry.body as Uint8Array)) } : entry
    return this.#answer(damaged) as ReturnType<MapStore['get']>
  }
}

// Issue #16 part 9: a body that does not fill the stored Content-Length is a damaged entry.
describe('a store that returns a body of another length than it was given', () => {
  it.each([
    ['cut short, synchronously', (body: Buffer) => body.subarray(0, body.byteLength - 1), (entry: unknown) => entry],
    ['run on, asynchronously', (body: Buffer) => Buffer.concat([body, Buffer.from('!')]), (entry: unknown) => Promise.resolve(entry)],
  ])('is a miss: the request() caller gets the whole body from the origin (%s), and the entry is deleted', async (_case, damage, answer) => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60', 'content-length': '2' })
    const store = new DamagingStore(damage, answer)
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const [key] = store.entries.keys()
    expect(await agent.cache.urls()).toEqual([]) // inspection skips it, as it skips what it cannot read
    const second = await get(origin.url, agent)
    expect([second.body, second.headers['content-length'], statusOf(second.headers)]).toEqual(['v2', '2', 'miss'])
    expect(store.deleted).toEqual([key])
    expect(agent.cache.stats).toMatchObject({ hits: 0, misses: 2, errors: 1 })
  })

  it('is a miss for fetch() too, and a cut coded body is never handed to the decoder', async () => {
    const text = 'a gzip-coded body '.repeat(100)
    const gzipped = gzipSync(text)
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-encoding': 'gzip', 'content-length': gzipped.byteLength }).end(gzipped)
    })
    const store = new DamagingStore((body) => body.subarray(0, body.byteLength >> 1))
    const agent = createTestAgent({ store })
    expect(await (await fetch(origin.url, { dispatcher: agent })).text()).toBe(text)
    const second = await fetch(origin.url, { dispatcher: agent })
    expect(await second.text()).toBe(text)
    expect(statusOf(Object.fromEntries(second.headers))).toBe('miss')
    expect(origin.requests).toBe(2)
    expect(agent.cache.stats).toMatchObject({ hits: 0, errors: 1 })
  })

  it.each([
    ['a stored HEAD response (its Content-Length is the GET\'s)', 'HEAD', { 'cache-control': 'max-age=60', 'content-length': '9' }, ''],
    ['a 204 (no body, whatever it says)', 'GET', { 'cache-control': 'max-age=60' }, ''],
    ['a body sent chunked (no Content-Length to check)', 'GET', { 'cache-control': 'max-age=60' }, 'chunked'],
  ] as const)('serves %s from an intact store as a hit', async (_case, method, headers, body) => {
    const origin = await startOrigin((_request, response) => {
      if (body === '' && method === 'GET') return void response.writeHead(204, headers).end()
      response.writeHead(200, headers)
      if (body !== '') response.write(body) // no Content-Length: node:http sends it chunked
      response.end()
    })
    const agent = createTestAgent({ store: new MapStore() })
    await get(origin.url, agent, { method })
    const again = await get(origin.url, agent, { method })
    expect([again.body, statusOf(again.headers)]).toEqual([body, 'hit'])
    expect(agent.cache.stats.errors).toBe(0)
  })
})
