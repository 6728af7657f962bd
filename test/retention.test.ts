import type { OutgoingHttpHeaders } from 'node:http'
import { describe, expect, it } from 'vitest'
import type { CachingAgentOptions, ResponseEntry } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { MapStore } from './helpers/map-store.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

const SECOND_MS = 1000
const WEEK_MS = 7 * 24 * 3600 * SECOND_MS

/**
 * Issue #18: a store needs no HTTP to expire entries. The cache works out until when each response it stores
 * is of use (RFC 9111 freshness, RFC 5861 stale windows, a while for revalidation when there is a
 * validator) and hands it to the store in the entry, as `usefulUntil`; SqliteStore and RedisStore read that
 * alone (test/stores/). Here a plain Map store shows what the cache hands over.
 */
describe('every response entry handed to a store says until when it is of use', () => {
  const cases: Array<[string, OutgoingHttpHeaders, CachingAgentOptions, number]> = [
    ['fresh for a minute, no validator: a minute', { 'cache-control': 'max-age=60' }, {}, 60 * SECOND_MS],
    ['with a validator: a week past its freshness', { 'cache-control': 'max-age=60', etag: '"v"' }, {}, 60 * SECOND_MS + WEEK_MS],
    ['with stale-while-revalidate: as long as that window', { 'cache-control': 'max-age=60, stale-while-revalidate=600' }, {}, 660 * SECOND_MS],
    ["with the staleIfError option: as long as it may serve it", { 'cache-control': 'max-age=60' }, { staleIfError: 3600 }, 3660 * SECOND_MS],
  ]
  it.each(cases)('%s', async (_name, headers, options, expectedMs) => {
    useFakeDate()
    const origin = await startOrigin((_request, response) => void response.writeHead(200, { ...headers, date: new Date().toUTCString() }).end('body'))
    const store = new MapStore()
    await get(origin.url, createTestAgent({ store, ...options }))
    const [entry] = [...store.entries.values()] as ResponseEntry[]
    expect(entry!.usefulUntil! - entry!.createdAt).toBe(expectedMs)
  })

  it('a response renewed by a 304 is handed over again, of use for longer', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((request, response) => {
      const fields = { 'cache-control': 'max-age=1', etag: '"v"', date: new Date().toUTCString() }
      if (request.headers['if-none-match'] === '"v"') return void response.writeHead(304, fields).end()
      response.writeHead(200, fields).end('body')
    })
    const store = new MapStore()
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const [first] = [...store.entries.values()] as ResponseEntry[]
    const firstUntil = first!.usefulUntil!
    clock.advance(60 * SECOND_MS)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('revalidated')
    await expect.poll(() => ([...store.entries.values()] as ResponseEntry[])[0]!.usefulUntil).toBe(firstUntil + 60 * SECOND_MS)
  })
})
