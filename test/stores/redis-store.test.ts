import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { RedisStore } from '../../lib/index.js'
import { createTestAgent } from '../helpers/agent.js'
import { statusOf } from '../helpers/cache-status.js'
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
async function openStore(kind: 'node-redis' | 'ioredis', options: { maxEntrySize?: number } = {}) {
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

    it('lets Redis expire entries by themselves: at freshness without a validator, days later with one', async () => {
      const { client, store } = await openStore(kind)
      const now = Date.now()
      const plain = responseEntry(1, { createdAt: now, headers: { 'cache-control': 'max-age=60' } })
      const validated = responseEntry(2, { createdAt: now, headers: { 'cache-control': 'max-age=60', etag: '"v"' } })
      await store.set('plain', plain)
      await store.set('validated', validated)
      const ttlOf = async (key: string) => Number(client instanceof Redis ? await client.pttl(`${store.prefix}${key}`) : await client.pTTL(`${store.prefix}${key}`))
      expect(await ttlOf('plain')).toBeGreaterThan(55_000)
      expect(await ttlOf('plain')).toBeLessThanOrEqual(60_000)
      expect(await ttlOf('validated')).toBeGreaterThan(7 * 24 * 3600 * 1000)
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

  it('reads a value it cannot decode as a miss, which the cache deletes', async () => {
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

  it('checks its options', () => {
    expect(() => new RedisStore(undefined as never)).toThrow(new TypeError('RedisStore options must be an object with a client, received undefined'))
    expect(() => new RedisStore({ client: {} })).toThrow(new TypeError('RedisStore options.client must be a node-redis or ioredis client, received an object'))
    expect(() => new RedisStore({ client: new Redis({ lazyConnect: true }), prefix: 5 as never })).toThrow(
      new TypeError('RedisStore options.prefix must be a string, received 5'),
    )
  })
})
