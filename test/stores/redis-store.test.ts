import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { CachingAgent, RedisStore } from '../../lib/index.js'
import { createTestAgent } from '../helpers/agent.js'
import { statusOf } from '../helpers/cache-status.js'
import { startOrigin } from '../helpers/origin.js'
import { connectNodeRedis, isRedisReachable, REDIS_URL, startOwnRedisServer, uniquePrefix } from '../helpers/redis.js'
import { fetchText as get } from '../helpers/request.js'
import { startVersionedOrigin } from '../helpers/versioned-origin.js'
import { describeStoreContract, responseEntry } from './contract.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const reachable = await isRedisReachable()
if (!reachable && process.env.CI === 'true') throw new Error(`CI=true and no Redis answers at ${REDIS_URL}: RedisStore cannot be tested`)
if (!reachable) console.warn(`No Redis answers at ${REDIS_URL} (set REDIS_URL): the RedisStore tests are skipped.`)

type Client = Awaited<ReturnType<typeof connectNodeRedis>> | Redis

async function connect(kind: 'node-redis' | 'ioredis', url = REDIS_URL): Promise<Client> {
  if (kind === 'node-redis') return connectNodeRedis(url)
  const client = new Redis(url, { lazyConnect: true, retryStrategy: (times) => Math.min(times * 20, 200) })
  client.on('error', () => {})
  await client.connect()
  return client
}

async function disconnect(client: Client): Promise<void> {
  if (client instanceof Redis) client.disconnect()
  else if (client.isOpen) client.destroy()
}

/** A RedisStore on a prefix of its own; its keys are removed and its client closed when the test ends. */
async function openStore(kind: 'node-redis' | 'ioredis', options: { maxEntrySize?: number; prefix?: string } = {}) {
  const client = await connect(kind)
  const store = new RedisStore({ client, prefix: uniquePrefix(), ...options })
  onTestFinished(async () => {
    await store.clear()
    await disconnect(client)
  })
  return { client, store }
}

for (const kind of ['node-redis', 'ioredis'] as const) {
  describe.skipIf(!reachable)(`RedisStore with ${kind}`, () => {
    describeStoreContract(`RedisStore (${kind})`, async () => {
      const client = await connect(kind)
      const store = new RedisStore({ client, prefix: uniquePrefix(), maxEntrySize: 256 * 1024 })
      return { store, close: async () => (await store.clear(), await disconnect(client)) }
    })

    it('stores bodies as bytes, not base64 text', async () => {
      const { client, store } = await openStore(kind)
      const body = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255])
      await store.set('bytes', responseEntry(1, { body }))
      const raw = client instanceof Redis ? await client.getBuffer(`${store.prefix}bytes`) : await client.sendCommand(['GET', `${store.prefix}bytes`], { typeMapping: { 36: Buffer } })
      expect(Buffer.from(raw as Buffer).subarray(-body.byteLength)).toEqual(Buffer.from(body))
    })

    it("lets Redis expire entries by themselves at the entry's usefulUntil, reading no HTTP field", async () => {
      const { client, store } = await openStore(kind)
      const now = Date.now()
      // The fields say fresh for a year and validated; the entry says of use for a minute: the entry decides.
      const dated = responseEntry(1, { createdAt: now, usefulUntil: now + 60_000, headers: { 'cache-control': 'max-age=31536000', etag: '"v"' } })
      // An entry that does not say (stored before entries did): kept 30 days from its creation.
      const undated = responseEntry(2, { createdAt: now })
      delete undated.usefulUntil
      const over = responseEntry(3, { createdAt: now - 120_000, usefulUntil: now - 60_000 })
      await store.set('dated', dated)
      await store.set('undated', undated)
      await store.set('over', over)
      const ttlOf = async (key: string) => Number(client instanceof Redis ? await client.pttl(`${store.prefix}${key}`) : await client.pTTL(`${store.prefix}${key}`))
      expect(await ttlOf('dated')).toBeGreaterThan(55_000)
      expect(await ttlOf('dated')).toBeLessThanOrEqual(60_000)
      expect(await ttlOf('undated')).toBeGreaterThan(29 * 24 * 3600 * 1000)
      expect(await ttlOf('undated')).toBeLessThanOrEqual(30 * 24 * 3600 * 1000)
      expect(await store.get('over')).toBeUndefined() // of no use already: not written at all
    })

    it('keeps an entry for as long as the staleIfError option may serve it', async () => {
      const { client, store } = await openStore(kind)
      const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
      const agent = createTestAgent({ store, staleIfError: 3600 })
      await get(origin.url, agent)
      const [key] = await vi.waitFor(async () => {
        const keys: string[] = []
        for await (const entry of agent.cache.entries()) keys.push(entry.key)
        expect(keys).toHaveLength(1) // once the write has reached Redis
        return keys
      })
      const ttl = Number(client instanceof Redis ? await client.pttl(`${store.prefix}${key}`) : await client.pTTL(`${store.prefix}${key}`))
      expect(ttl).toBeGreaterThan(3_600_000)
    })
  })
}

describe.skipIf(!reachable)('RedisStore', () => {
  it('lists keys with SCAN, never KEYS', async () => {
    const client = await connectNodeRedis()
    const sent: string[] = []
    const recording = {
      get isReady() {
        return client.isReady
      },
      sendCommand: (args: Array<string | Buffer>, options?: object) => {
        sent.push(String(args[0]))
        return client.sendCommand(args, options)
      },
    }
    const store = new RedisStore({ client: recording, prefix: uniquePrefix() })
    onTestFinished(async () => (await store.clear(), await disconnect(client)))
    for (let index = 0; index < 1200; index++) await store.set(`k${index}`, responseEntry(index))
    const keys = []
    for await (const key of store.keys()) keys.push(key)
    expect(new Set(keys).size).toBe(1200)
    expect(sent).toContain('SCAN')
    expect(sent).not.toContain('KEYS')
  }, 20_000)

  it('is shared by processes: a response stored by one is a hit in another', async () => {
    const prefix = uniquePrefix()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const client = await connect('ioredis')
    const store = new RedisStore({ client, prefix })
    onTestFinished(async () => (await store.clear(), await disconnect(client)))
    await get(origin.url, createTestAgent({ store }))
    const output = await new Promise<string>((resolve, reject) => {
      const script = `
        import { createClient } from 'redis'
        import { request } from 'undici'
        import { CachingAgent, RedisStore, cacheInfo } from 'undici-http-cache'
        const client = await createClient({ url: ${JSON.stringify(REDIS_URL)} }).connect()
        const agent = new CachingAgent({ store: new RedisStore({ client, prefix: ${JSON.stringify(prefix)} }) })
        const response = await request(${JSON.stringify(origin.url)}, { dispatcher: agent, headers: { 'cache-control': 'only-if-cached' } })
        console.log(cacheInfo(response.headers).status, await response.body.text())
        await agent.close(); client.destroy()
      `
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (chunk) => (stdout += chunk))
      child.stderr.on('data', (chunk) => (stderr += chunk))
      child.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(stderr))))
    })
    expect(output.trim()).toBe('hit v1')
    expect(origin.requests).toBe(1)
  })

  it('keeps requests succeeding while Redis is down, and caches again once it is back, without a restart', async () => {
    const server = await startOwnRedisServer()
    onTestFinished(() => server.stop())
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const client = await connectNodeRedis(server.url)
    onTestFinished(() => disconnect(client))
    const agent = createTestAgent({ store: new RedisStore({ client }) })
    await get(origin.url, agent)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('hit')

    await server.stop()
    const whileDown = [await get(origin.url, agent), await get(origin.url, agent)]
    expect(whileDown.map((response) => [response.status, statusOf(response.headers)])).toEqual([
      [200, 'miss'],
      [200, 'miss'],
    ])

    await server.start() // empty: it kept nothing
    await vi.waitFor(() => expect(client.isReady).toBe(true), { timeout: 5_000 })
    await get(origin.url, agent) // stored again
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('hit')
    expect(agent.cache.stats.errors).toBeGreaterThan(0)
  }, 20_000)

  it('reads a value it cannot decode as a miss, and stores the response over it', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const { client, store } = await openStore('node-redis')
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const keys: string[] = []
    for await (const key of store.keys()) keys.push(key)
    const [key] = keys
    await (client as Awaited<ReturnType<typeof connectNodeRedis>>).set(`${store.prefix}${key}`, 'not an entry')
    expect((await get(origin.url, agent)).body).toBe('v2')
    expect(agent.cache.stats.errors).toBe(1)
    expect((await get(origin.url, agent)).body).toBe('v2') // stored again in its place
  })

  describe('agent.close()', () => {
    /** An agent on its own client, as in a process about to exit: closed, then its client, then what is not in Redis is lost. */
    async function runAndExit(prefix: string, requests: (agent: CachingAgent) => Promise<void>): Promise<void> {
      const client = await connectNodeRedis()
      const agent = new CachingAgent({ store: new RedisStore({ client, prefix }) })
      await requests(agent)
      await agent.close()
      client.destroy()
    }

    // save() read the Vary record before writing: writesDone() did not see it, and resolved before the writes.
    it('resolves once a Vary response and its Vary record are in Redis', async () => {
      const origin = await startOrigin((request, response) => {
        response.writeHead(200, { 'cache-control': 'max-age=600', vary: 'accept' })
        response.end(`for ${request.headers.accept}`)
      })
      const prefix = uniquePrefix()
      await runAndExit(prefix, async (agent) => void (await get(origin.url, agent, { headers: { accept: 'text/plain' } })))
      const { store } = await openStore('node-redis', { prefix })
      const next = await get(origin.url, createTestAgent({ store }), { headers: { accept: 'text/plain' } })
      expect([statusOf(next.headers), next.body]).toEqual(['hit', 'for text/plain'])
      expect(origin.requests).toBe(1)
    })

    // forget() read the entry before deleting: an invalidation was lost when the process exited.
    it('resolves once an invalidation has removed the stored response from Redis', async () => {
      let version = 1
      const origin = await startOrigin((request, response) => {
        if (request.method === 'POST') version++
        response.writeHead(200, { 'cache-control': 'max-age=600' })
        response.end(`v${version}`)
      })
      const prefix = uniquePrefix()
      await runAndExit(prefix, async (agent) => {
        await get(origin.url, agent)
        await get(origin.url, agent, { method: 'POST', body: 'x' })
      })
      const { store } = await openStore('node-redis', { prefix })
      const next = await get(origin.url, createTestAgent({ store }))
      expect([statusOf(next.headers), next.body]).toEqual(['miss', 'v2'])
    })
  })

  it('checks its options', () => {
    expect(() => new RedisStore(undefined as never)).toThrow(new TypeError('RedisStore options must be an object with a client, received undefined'))
    expect(() => new RedisStore({ client: {} })).toThrow(new TypeError('RedisStore options.client must be a node-redis or ioredis client, received an object'))
    expect(() => new RedisStore({ client: new Redis({ lazyConnect: true }), prefix: 5 as never })).toThrow(
      new TypeError('RedisStore options.prefix must be a non-empty string, received 5'),
    )
  })

  // With prefix '' every key in the database is under the prefix: clear() would empty the user's database.
  it('refuses an empty prefix', () => {
    expect(() => new RedisStore({ client: new Redis({ lazyConnect: true }), prefix: '' })).toThrow(
      new TypeError('RedisStore options.prefix must be a non-empty string, received ""'),
    )
  })

  // ioredis prefixes GET, SET and DEL with keyPrefix but not SCAN: urls(), delete() and clear() found nothing.
  it('refuses an ioredis client with a keyPrefix, whose keys SCAN would not find', () => {
    expect(() => new RedisStore({ client: new Redis({ lazyConnect: true, keyPrefix: 'app:' }) })).toThrow(
      new TypeError(
        'RedisStore options.client must not have an ioredis keyPrefix (SCAN does not apply it): use a client without one, and options.prefix instead, received keyPrefix "app:"',
      ),
    )
  })

  it('leaves values under its prefix that are not entries of this version alone when the cache is inspected', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=600' })
    const { client, store } = await openStore('node-redis')
    const redis = client as Awaited<ReturnType<typeof connectNodeRedis>>
    await redis.set(`${store.prefix}session:42`, 'user=alice') // the application's own data, under the same prefix
    await store.set('older-release', { ...responseEntry(1), version: 2 } as never) // another release's entry
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    expect(await agent.cache.urls()).toEqual([origin.url])
    expect((await collect(agent.cache.entries())).map((entry) => entry.url)).toEqual([origin.url])
    expect(await agent.cache.delete(origin.url)).toBe(1)
    expect(await redis.get(`${store.prefix}session:42`)).toBe('user=alice')
    expect(await redis.exists(`${store.prefix}older-release`)).toBe(1)
  })

  it('leaves a value that is not an entry alone on a miss whose response is not stored', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'no-store' })
    const { client, store } = await openStore('node-redis')
    const redis = client as Awaited<ReturnType<typeof connectNodeRedis>>
    const agent = new CachingAgent({ store, key: () => 'page' })
    await redis.set(`${store.prefix}page`, "not the cache's")
    expect((await get(origin.url, agent)).body).toBe('v1')
    await agent.close() // every write in Redis
    expect(await redis.get(`${store.prefix}page`)).toBe("not the cache's")
  })

  // RFC 9111 §1.2.2 reads a huge max-age as 2^31 seconds; Redis refused PX values past its clock's range.
  it('stores a response whose max-age is longer than Redis can expire, with an expiry Redis accepts', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=99999999999999999' })
    const { client, store } = await openStore('ioredis')
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('hit')
    expect(agent.cache.stats.errors).toBe(0)
    const [key] = await collect(store.keys())
    expect(await (client as Redis).pttl(`${store.prefix}${key}`)).toBeGreaterThan(60 * 365 * 24 * 3600 * 1000)
  })
})

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = []
  for await (const item of items) all.push(item)
  return all
}
