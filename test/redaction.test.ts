// Issue #16 part 0: no credential's value reaches a store, the inspection API, Cache-Status or a debug line.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { CachingAgent, MemoryStore, RedisStore, SqliteStore, type CacheStore } from '../lib/index.js'
import { ALICE, BOB, bearer, send, startAccountOrigin } from './helpers/accounts.js'
import { connectNodeRedis, isRedisReachable, uniquePrefix } from './helpers/redis.js'
import { removeDatabaseDirectory } from './helpers/sqlite-file.js'

const SECRET = /s3cret/
const redisReachable = await isRedisReachable()

/**
 * Every place a credential can be in a request, for two users, each request twice (a miss, then a hit):
 * query, headers (one that Vary names too), JSON and form bodies of cached POSTs. Returns every
 * `Cache-Status` the caller saw and what the inspection API shows.
 */
async function requestWithSecrets(store: CacheStore): Promise<{ shown: string; agent: CachingAgent }> {
  const origin = await startAccountOrigin()
  const agent = new CachingAgent({ store, methods: ['GET', 'HEAD', 'POST'] })
  const requests: Array<[string, Parameters<typeof send>[3]]> = []
  for (const secret of [ALICE, BOB]) {
    const headers = { ...bearer(secret), cookie: `session=${secret}`, 'x-api-key': secret, 'proxy-authorization': `Basic ${secret}` }
    requests.push(
      [`${origin.url}v1/me?api_key=${secret}&access_token=${secret}`, {}],
      [`${origin.url}v1/me`, { headers }],
      [`${origin.url}vary/me`, { headers }],
      [`${origin.url}graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ q: 1, api_key: secret, password: secret }) }],
      [`${origin.url}form`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `q=1&access_token=${secret}` }],
    )
  }
  const cacheStatuses: string[] = []
  let hits = 0
  for (const via of ['request', 'fetch'] as const) {
    for (const [url, options] of requests) {
      const { cacheStatus, status } = await send(via, url, agent, options)
      cacheStatuses.push(cacheStatus)
      if (status === 'hit') hits++
    }
  }
  // Each stored, then served. Read by cacheInfo(): the field's `key="…"` is base64url, and may spell "hit".
  expect(hits).toBe(requests.length)
  const entries = []
  for await (const entry of agent.cache.entries()) entries.push({ ...entry, body: Buffer.from(entry.body).toString() })
  const got = await Promise.all(requests.map(([url, { headers, method, body } = {}]) => agent.cache.get(url, { headers, method, body })))
  expect(got.every((entry) => entry !== undefined)).toBe(true)
  const shown = JSON.stringify({ cacheStatuses, entries, urls: await agent.cache.urls(), got: got.map((entry) => ({ ...entry, body: undefined })) })
  expect(shown).toContain('redacted:') // the digests stand in for the values
  return { shown, agent }
}

/** Every value a store holds, as the text it serialises to, bodies included. */
async function contentsOf(store: CacheStore): Promise<string> {
  const values = []
  for await (const key of await store.keys()) values.push(key, await store.get(key))
  return JSON.stringify(values, (_name, value) => (value?.type === 'Buffer' ? Buffer.from(value.data).toString('latin1') : value))
}

describe.each(['request', 'fetch'] as const)('redaction of every spelling of a query credential, through %s()', (via) => {
  const spellings: Array<[string, (secret: string) => string]> = [
    ['an upper-case name', (secret) => `v1/me?API_KEY=${secret}`],
    ['a percent-encoded name', (secret) => `v1/me?api%5Fkey=${secret}`],
    ['a repeated name', (secret) => `v1/me?api_key=${secret}&api_key=shared`],
    ['a pair after a ";"', (secret) => `v1/me?view=full;api_key=${secret}`],
    ['an array or nested name (PHP, Rails)', (secret) => `v1/me?api_key[]=${secret}&auth[access_token]=${secret}&password[0]=${secret}`],
  ]
  it.each(spellings)('%s: keeps users apart, and no store or Cache-Status holds the value', async (_name, pathOf) => {
    const origin = await startAccountOrigin()
    const store = new MemoryStore()
    const agent = new CachingAgent({ store })
    onTestFinished(() => agent.close())
    const alice = await send(via, origin.url + pathOf(ALICE), agent)
    const bob = await send(via, origin.url + pathOf(BOB), agent)
    expect([alice.body, bob.body]).toEqual(['1 account of alice', '2 account of bob'])
    expect(alice.cacheStatus + bob.cacheStatus + (await agent.cache.urls()).join()).not.toMatch(SECRET)
    expect(await contentsOf(store)).not.toMatch(SECRET)
  })
})

describe('redaction: no credential value is kept or shown', () => {
  it('in a MemoryStore, entries(), urls(), cache.get() or Cache-Status', async () => {
    const store = new MemoryStore()
    const { shown, agent } = await requestWithSecrets(store)
    onTestFinished(() => agent.close())
    expect(shown).not.toMatch(SECRET)
    const contents = await contentsOf(store)
    expect(contents).toContain('account of alice')
    expect(contents).not.toMatch(SECRET)
  })

  it('in a SqliteStore file, its write-ahead log included', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-redaction-'))
    onTestFinished(() => removeDatabaseDirectory(directory))
    const path = join(directory, 'cache.db')
    const store = new SqliteStore({ path })
    onTestFinished(() => store.close())
    const { agent } = await requestWithSecrets(store)
    await agent.close()
    const bytes = [path, `${path}-wal`].filter((file) => existsSync(file)).map((file) => readFileSync(file).toString('latin1'))
    expect(bytes.join('')).toContain('account of bob')
    expect(bytes.join('')).not.toMatch(SECRET)
  })

  it.skipIf(!redisReachable)('in Redis values', async () => {
    const client = await connectNodeRedis()
    const prefix = uniquePrefix()
    onTestFinished(async () => {
      for (const key of await client.keys(`${prefix}*`)) await client.del(key)
      client.destroy()
    })
    const { agent } = await requestWithSecrets(new RedisStore({ client, prefix }))
    await agent.close()
    const keys = await client.keys(`${prefix}*`)
    const values = await Promise.all(keys.map((key) => client.sendCommand(['GET', key], { typeMapping: { 36: Buffer } }) as Promise<Buffer>))
    const text = [...keys, ...values.map((value) => value.toString('latin1'))].join('\n')
    expect(text).toContain('account of alice')
    expect(text).not.toMatch(SECRET)
  })

  it('in NODE_DEBUG=undici-http-cache output, a store failing and a revalidation failing', () => {
    const script = `
      import { createServer } from 'node:http'
      import { request } from 'undici'
      import { CachingAgent, MemoryStore } from 'undici-http-cache'
      let calls = 0
      const server = createServer((req, res) => {
        if (++calls > 2) return res.destroy() // a request from each agent, then the background revalidation fails
        res.setHeader('cache-control', 'max-age=0, stale-while-revalidate=60').end('ok')
      })
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
      const url = 'http://127.0.0.1:' + server.address().port + '/me?api_key=${ALICE}'
      const headers = { authorization: 'Bearer ${ALICE}', cookie: 's=${ALICE}' }
      const fail = () => { throw new Error('store is down') }
      const failing = new CachingAgent({ store: { get: fail, set: fail, delete: fail, keys: fail, clear: fail } })
      await (await request(url, { dispatcher: failing, headers })).body.text()
      const agent = new CachingAgent({ store: new MemoryStore() })
      for (let i = 0; i < 2; i++) await (await request(url, { dispatcher: agent, headers })).body.text()
      // The second request's refresh behind the stale entry fails in the background: wait until it is counted.
      for (let turns = 0; agent.cache.stats.errors === 0 && turns < 500; turns++) await new Promise((resolve) => setTimeout(resolve, 10))
      console.log(JSON.stringify([failing.cache.stats.errors, agent.cache.stats.errors]))
      await Promise.all([agent.close(), failing.close()]); server.close()
    `
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, NODE_DEBUG: 'undici-http-cache' },
      encoding: 'utf8',
    })
    const [failingErrors, revalidationErrors] = JSON.parse(result.stdout) as number[]
    expect([failingErrors! > 0, revalidationErrors]).toEqual([true, 1])
    expect(result.stderr).toMatch(/store get failed/)
    expect(result.stderr).toMatch(/background revalidation failed/)
    expect(result.stderr).not.toMatch(SECRET)
  })
})
