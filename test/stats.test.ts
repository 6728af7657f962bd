import { describe, expect, it, vi } from 'vitest'
import { entrySize, MemoryStore, type ResponseEntry } from '../lib/index.js'
import { MapStore } from './helpers/map-store.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { startValidatingOrigin } from './helpers/validating-origin.js'

const ZERO = { hits: 0, misses: 0, revalidated: 0, stale: 0, stored: 0, bytesStored: 0, evicted: 0, errors: 0, hitRatio: 0 }

describe('cache.stats', () => {
  it('counts a miss that is stored, hits, and a 304 revalidation that renews the entry', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'body', etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    expect(agent.cache.stats).toEqual(ZERO)
    await get(origin.url, agent)
    await get(origin.url, agent)
    await get(origin.url, agent, { headers: { 'if-none-match': '"a"' } }) // answered 304 from the fresh entry
    clock.advance(61_000)
    await get(origin.url, agent) // stale: revalidated, 304, renewed
    await get(origin.url, agent)
    expect(agent.cache.stats).toEqual({ ...ZERO, misses: 1, stored: 2, bytesStored: expect.any(Number), hits: 3, revalidated: 1, hitRatio: 3 / 5 })
  })

  it('counts the bytes of each response written as a store counts them (entrySize), a renewal included', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'x'.repeat(5000), etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const store = new MapStore()
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const sizeOf = (): number => entrySize([...store.entries.values()][0] as ResponseEntry)
    const first = sizeOf()
    expect(agent.cache.stats.bytesStored).toBe(first)
    clock.advance(61_000)
    await get(origin.url, agent) // revalidated: the renewed entry is written again
    expect(agent.cache.stats).toMatchObject({ stored: 2, bytesStored: first + sizeOf(), revalidated: 1, hitRatio: 0 })
  })

  it('counts a revalidation the origin answered in full as a miss, as Cache-Status does, in hitRatio too', async () => {
    const clock = useFakeDate()
    let version = 0
    const origin = await startOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', etag: `"${++version}"` }).end(`v${version}`) // never 304
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    await get(origin.url, agent)
    clock.advance(61_000)
    const renewed = await get(origin.url, agent) // stale: revalidated, answered 200 with a new body
    expect(renewed.body).toBe('v2')
    expect(agent.cache.stats).toMatchObject({ hits: 1, misses: 2, revalidated: 0, stale: 0, hitRatio: 1 / 3 })
  })

  it('counts stale responses served: max-stale, stale-while-revalidate and stale-if-error', async () => {
    const clock = useFakeDate()
    let failing = false
    const origin = await startOrigin((incoming, response) => {
      if (failing) return void response.writeHead(503).end()
      response.setHeader('cache-control', incoming.url === '/swr' ? 'max-age=1, stale-while-revalidate=60' : 'max-age=1, stale-if-error=60')
      response.end('v')
    })
    const agent = createTestAgent()
    await get(`${origin.url}swr`, agent)
    await get(`${origin.url}sie`, agent)
    clock.advance(2_000)
    await get(`${origin.url}sie`, agent, { headers: { 'cache-control': 'max-stale=10' } })
    await get(`${origin.url}swr`, agent) // stale now, refreshed behind: a 200, stored
    await vi.waitFor(() => expect(agent.cache.stats.stored).toBe(3))
    failing = true
    await get(`${origin.url}sie`, agent)
    expect(agent.cache.stats).toEqual({ ...ZERO, misses: 2, stored: 3, bytesStored: expect.any(Number), stale: 3, hitRatio: 3 / 5 })
  })

  it('counts failed background revalidations, failing key functions and store failures as errors', async () => {
    const clock = useFakeDate()
    let failing = false
    const origin = await startOrigin((_incoming, response) => {
      if (failing) return void response.writeHead(500).end()
      response.setHeader('cache-control', 'max-age=1, stale-while-revalidate=60')
      response.end('v')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(2_000)
    failing = true
    await get(origin.url, agent)
    await vi.waitFor(() => expect(agent.cache.stats.errors).toBe(1))

    const throwingKey = createTestAgent({
      key: () => {
        throw new Error('no key')
      },
    })
    await get(origin.url, throwingKey)
    expect(throwingKey.cache.stats).toEqual({ ...ZERO, errors: 1 })

    const brokenStore = createTestAgent({
      store: { get: () => Promise.reject(new Error('down')), set: () => {}, delete: () => {}, keys: () => [], clear: () => {} },
    })
    await get(origin.url, brokenStore)
    expect(brokenStore.cache.stats).toMatchObject({ errors: 1, misses: 1 })
  })

  it("reports the MemoryStore's evictions", async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end('x'.repeat(4 * 1024))
    })
    const agent = createTestAgent({ store: new MemoryStore({ maxSize: 14 * 1024, maxEntrySize: 8 * 1024 }) }) // two entries of about 6 KiB held
    for (const path of ['a', 'b', 'c', 'd']) await get(`${origin.url}${path}`, agent)
    expect(agent.cache.stats).toMatchObject({ misses: 4, stored: 4, evicted: 2 })
    expect(await agent.cache.urls()).toEqual([`${origin.url}c`, `${origin.url}d`])
  })
})
