import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { CachingAgent, RedisStore, SqliteStore, type CacheStore } from '../../lib/index.js'
import { createTestAgent, useFakeDate } from '../helpers/agent.js'
import { statusOf } from '../helpers/cache-status.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { connectNodeRedis, isRedisReachable, uniquePrefix } from '../helpers/redis.js'
import { fetchText as get } from '../helpers/request.js'
import { removeDatabaseDirectory } from '../helpers/sqlite-file.js'

const reachable = await isRedisReachable()

/** A RedisStore on a prefix of its own; its keys are removed and its client closed when the test ends. */
async function openRedisStore(): Promise<{ store: RedisStore; client: Awaited<ReturnType<typeof connectNodeRedis>> }> {
  const client = await connectNodeRedis()
  const store = new RedisStore({ client, prefix: uniquePrefix() })
  onTestFinished(async () => {
    await store.clear()
    client.destroy()
  })
  return { store, client }
}

/** A SqliteStore in a temporary directory, closed and removed when the test ends. */
function openSqliteStore(): SqliteStore {
  const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-vary-'))
  const store = new SqliteStore({ path: join(directory, 'cache.db') })
  onTestFinished(() => {
    store.close()
    removeDatabaseDirectory(directory)
  })
  return store
}

/** An origin fresh for a year whose responses vary on Accept-Encoding: a fingerprinted asset. */
function startAssetOrigin(): Promise<Origin> {
  return startOrigin((request, response) => {
    response.writeHead(200, { 'cache-control': 'max-age=31536000, immutable', vary: 'accept-encoding' })
    response.end(`asset for ${request.headers['accept-encoding']}`)
  })
}

const GZIP = { headers: { 'accept-encoding': 'gzip' } }
const DAY_MS = 24 * 60 * 60 * 1000

describe('Vary records in stores that expire entries', () => {
  // The record was kept 30 days whatever its variants' lifetimes: a year-long asset became a miss.
  it('keeps a URL reachable in SqliteStore as long as its longest-lived variant', async () => {
    const clock = useFakeDate()
    const origin = await startAssetOrigin()
    const agent = createTestAgent({ store: openSqliteStore() })
    await get(origin.url, agent, GZIP)
    clock.advance(31 * DAY_MS)
    expect(statusOf((await get(origin.url, agent, GZIP)).headers)).toBe('hit')
    clock.advance(300 * DAY_MS)
    expect(statusOf((await get(origin.url, agent, GZIP)).headers)).toBe('hit')
    expect(origin.requests).toBe(1)
  })

  it.skipIf(!reachable)('gives the Vary record in Redis an expiry no sooner than its variants', async () => {
    const origin = await startAssetOrigin()
    const { store, client } = await openRedisStore()
    const agent = new CachingAgent({ store })
    await get(origin.url, agent, GZIP)
    await agent.close() // every write in Redis
    const expiriesInDays = []
    for await (const key of store.keys()) expiriesInDays.push(Math.floor((await client.pTTL(`${store.prefix}${key}`)) / DAY_MS))
    expect(expiriesInDays).toEqual([364, 364]) // the record and the variant
  })
})

describe.skipIf(!reachable)('variants of one URL stored at the same time', () => {
  const languages = ['en', 'fr', 'de', 'es', 'it', 'nl', 'pt', 'pl']

  /**
   * An origin that varies on Accept-Language and holds its first answers until every language has asked,
   * so that all are stored at once; later requests are answered at once.
   */
  function startLanguageOrigin(): Promise<Origin> {
    const waiting: Array<() => void> = []
    let asked = 0
    return startOrigin((request, response) => {
      asked++
      waiting.push(() => {
        response.writeHead(200, { 'cache-control': 'max-age=600', vary: 'accept-language' })
        response.end(`hello in ${request.headers['accept-language']}`)
      })
      if (asked >= languages.length) for (const answer of waiting.splice(0)) answer()
    })
  }

  /** Every language asked at once, through `agentCount` agents on the one store. */
  async function storeAllAtOnce(store: CacheStore, origin: Origin, agentCount: number): Promise<void> {
    const agents = Array.from({ length: agentCount }, () => new CachingAgent({ store, coalesce: false }))
    await Promise.all(languages.map((language, index) => get(origin.url, agents[index % agentCount]!, { headers: { 'accept-language': language } })))
    for (const agent of agents) await agent.close() // every write in the store
  }

  // Each save read the URL's Vary record and wrote it back with its own variant: all but the last dropped out.
  it.each([1, 2])('are all served afterwards (RedisStore; agents on one store object: %i)', async (agentCount) => {
    const origin = await startLanguageOrigin()
    const { store } = await openRedisStore()
    await storeAllAtOnce(store, origin, agentCount)
    const agent = createTestAgent({ store })
    const statuses = []
    for (const language of languages) statuses.push(statusOf((await get(origin.url, agent, { headers: { 'accept-language': language } })).headers))
    expect(statuses).toEqual(languages.map(() => 'hit'))
    expect(origin.requests).toBe(languages.length)
  })
})
