// Issue #16 part 3: a program's dependency tree may hold two undici majors, the user's own and the one
// this package resolves as its peer. Both are installed here (undici@8 and the undici7 alias). They are
// loaded through Node's require, which vitest's UNDICI_MAJOR=7 alias of 'undici' does not reach, so that
// each run has both copies: the library itself runs on undici 8 in one run and on undici 7 in the other.
import { createRequire } from 'node:module'
import type { Client, Dispatcher } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import { cacheInterceptor, MemoryStore } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startValidatingOrigin } from './helpers/validating-origin.js'

const require = createRequire(import.meta.url)

/** What these tests use of one copy of undici: typed as the library sees undici, since the copies' own types differ. */
interface UndiciCopy {
  Agent: new () => Dispatcher
  Client: typeof Client
  request(url: string, options: { dispatcher: Dispatcher; method: 'GET' | 'POST' }): Promise<Dispatcher.ResponseData>
}
const undici8 = require('undici') as UndiciCopy
const undici7 = require('undici7') as UndiciCopy

/** One request through a copy's top-level `request()`: status, body and the cache's verdict. */
async function send(copy: UndiciCopy, url: string, dispatcher: Dispatcher, method: 'GET' | 'POST' = 'GET') {
  const response = await copy.request(url, { dispatcher, method })
  return { status: response.statusCode, body: await response.body.text(), cacheStatus: statusOf(response.headers) }
}

/** Serves "v1" fresh for one second, and answers a revalidation of it with 304. */
async function startRevalidatingOrigin() {
  return startValidatingOrigin({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'max-age=1' } })
}

/** Requests one URL three times with `caller`'s request() through a CachingAgent over `inner`'s Agent. */
async function expectMissHitRevalidation({ caller, inner }: { caller: UndiciCopy; inner: UndiciCopy }): Promise<void> {
  const clock = useFakeDate()
  const origin = await startRevalidatingOrigin()
  const agent = createTestAgent({ dispatcher: new inner.Agent() })
  expect(await send(caller, origin.url, agent)).toEqual({ status: 200, body: 'v1', cacheStatus: 'miss' })
  expect(await send(caller, origin.url, agent)).toEqual({ status: 200, body: 'v1', cacheStatus: 'hit' })
  clock.advance(2_000)
  expect(await send(caller, origin.url, agent)).toEqual({ status: 200, body: 'v1', cacheStatus: 'revalidated' })
  expect(origin.statuses).toEqual([200, 304])
}

describe('another copy of undici', () => {
  it('checks that both copies are loaded', () => {
    expect(require('undici/package.json').version).toMatch(/^8\./)
    expect(require('undici7/package.json').version).toMatch(/^7\./)
  })

  it("answers undici 7's request() through a CachingAgent over an undici 8 Agent: miss, hit, revalidation", async () => {
    await expectMissHitRevalidation({ caller: undici7, inner: undici8 })
  })

  it("revalidates in the background and invalidates for undici 7's request() over an undici 8 Agent", async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'max-age=1, stale-while-revalidate=60' } })
    const agent = createTestAgent({ dispatcher: new undici8.Agent() })
    await send(undici7, origin.url, agent)
    clock.advance(2_000)
    expect(await send(undici7, origin.url, agent)).toMatchObject({ body: 'v1', cacheStatus: 'stale' })
    await expect.poll(() => origin.statuses).toEqual([200, 304])
    expect(await send(undici7, origin.url, agent, 'POST')).toMatchObject({ status: 200 })
    expect(await send(undici7, origin.url, agent)).toMatchObject({ body: 'v1', cacheStatus: 'miss' })
    expect(origin.requests).toBe(4)
  })

  it("coalesces concurrent misses of undici 7's request() over an undici 8 Agent", async () => {
    const origin = await startRevalidatingOrigin()
    const agent = createTestAgent({ dispatcher: new undici8.Agent() })
    const seen = await Promise.all([1, 2, 3].map(() => send(undici7, origin.url, agent)))
    expect(seen.map(({ status, body }) => `${status} ${body}`)).toEqual(['200 v1', '200 v1', '200 v1'])
    expect(origin.requests).toBe(1)
  })

  it("answers undici 7's request() through an undici 8 Client composed with cacheInterceptor", async () => {
    const origin = await startRevalidatingOrigin()
    const client = new undici8.Client(origin.origin).compose(cacheInterceptor({ store: new MemoryStore() }))
    onTestFinished(() => client.close())
    expect(await send(undici7, origin.url, client)).toEqual({ status: 200, body: 'v1', cacheStatus: 'miss' })
    expect(await send(undici7, origin.url, client)).toEqual({ status: 200, body: 'v1', cacheStatus: 'hit' })
    expect(origin.requests).toBe(1)
  })

  it("answers undici 8's request() through a CachingAgent over an undici 7 Agent: miss, hit, revalidation", async () => {
    await expectMissHitRevalidation({ caller: undici8, inner: undici7 })
  })
})
