import { request, type Dispatcher } from 'undici'
import { describe, expect, it, vi } from 'vitest'
import { cacheInfo } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { retainedHeapBytes } from './helpers/memory.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { startValidatingOrigin } from './helpers/validating-origin.js'

/** Polls until a request that may not reach the origin is a fresh hit: the background refresh has landed. */
async function waitForFreshHit(url: string, agent: Dispatcher): Promise<void> {
  await vi.waitFor(async () => {
    const response = await get(url, agent, { headers: { 'cache-control': 'only-if-cached' } })
    expect(statusOf(response.headers)).toBe('hit')
  })
}

/** An origin that answers 200 "v1" with `headers` until `fail()`; then `failure` decides each answer. */
async function startFailingOrigin(
  headers: Record<string, string>,
): Promise<Origin & { fail(how: 'status-503' | 'reset' | 'hang'): void }> {
  let failure: 'status-503' | 'reset' | 'hang' | undefined
  const origin = await startOrigin((incoming, response) => {
    if (failure === 'status-503') {
      response.writeHead(503, { 'content-type': 'text/plain' })
      return void response.end('unavailable')
    }
    if (failure === 'reset') return void incoming.socket.destroy()
    if (failure === 'hang') return // never answers; the agent's headersTimeout ends it
    response.writeHead(200, headers)
    response.end('v1')
  })
  return Object.assign(origin, { fail: (how: typeof failure) => void (failure = how) })
}

describe('stale-while-revalidate', () => {
  it('serves a stale entry at once within the window and refreshes it behind, once', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'body', etag: '"a"', headers: { 'cache-control': 'max-age=60, stale-while-revalidate=30' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(70_000)

    const served = await Promise.all(Array.from({ length: 10 }, () => get(origin.url, agent)))
    for (const response of served) {
      expect(response.body).toBe('body')
      expect(statusOf(response.headers)).toBe('stale')
      expect(response.headers['cache-status']).toMatch(/; hit; ttl=-10/)
    }
    await waitForFreshHit(origin.url, agent)
    expect(origin.statuses).toEqual([200, 304]) // ten stale requests, one revalidation behind them
    expect(origin.received[1]!.headers['if-none-match']).toBe('"a"')
  })

  it('revalidates in the foreground past the window', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'body', etag: '"a"', headers: { 'cache-control': 'max-age=60, stale-while-revalidate=30' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(91_000)
    const response = await get(origin.url, agent)
    expect(statusOf(response.headers)).toBe('revalidated')
    expect(origin.statuses).toEqual([200, 304])
  })

  it.each([
    ['a shared cache, from CDN-Cache-Control', { 'cdn-cache-control': 'max-age=60, stale-while-revalidate=30', 'cache-control': 'no-cache' }, true],
    ['a qualified no-cache, which withholds only the field it names', { 'cache-control': 'max-age=60, no-cache="x-session", stale-while-revalidate=30', 'x-session': 's1' }, false],
  ] as const)('takes the window from the directives the cache obeys: %s', async (_case, headers, shared) => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'body', etag: '"a"', headers })
    const agent = createTestAgent({ shared })
    await get(origin.url, agent)
    clock.advance(70_000)
    const served = await get(origin.url, agent)
    expect(statusOf(served.headers)).toBe('stale')
    expect(served.body).toBe('body')
    expect(served.headers['x-session']).toBeUndefined()
    await waitForFreshHit(origin.url, agent)
    expect(origin.statuses).toEqual([200, 304])
  })

  it('survives a failing background revalidation: the stale entry is served again and a new one is tried', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60, stale-while-revalidate=600' })
      response.end('v1')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    await origin.stop() // from here every connection is refused
    clock.advance(70_000)
    expect((await get(origin.url, agent)).body).toBe('v1')
    clock.advance(1_000)
    const again = await get(origin.url, agent)
    expect(again.body).toBe('v1')
    expect(statusOf(again.headers)).toBe('stale')
  })

  it('retains no memory across 100 sequential stale requests and their refreshes', async () => {
    const clock = useFakeDate()
    const body = Buffer.alloc(64 * 1024, 'x') // a leaked refresh would keep 64 KiB
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=1, stale-while-revalidate=1000000' })
      response.end(body)
    })
    const agent = createTestAgent()
    const staleRequestThenRefresh = async (): Promise<void> => {
      clock.advance(2_000)
      const before = origin.requests
      expect(statusOf((await get(origin.url, agent)).headers)).toBe('stale')
      await vi.waitFor(() => expect(origin.requests).toBe(before + 1))
      await waitForFreshHit(origin.url, agent)
    }
    await get(origin.url, agent)
    for (let round = 0; round < 10; round++) await staleRequestThenRefresh() // warm up
    const baseline = retainedHeapBytes()
    for (let round = 0; round < 100; round++) await staleRequestThenRefresh()
    const growth = retainedHeapBytes() - baseline
    expect(growth).toBeLessThan(2 * 1024 * 1024) // 100 leaked refreshes would be 6.4 MiB
  })
})

describe('stale-if-error', () => {
  const STALE_IF_ERROR = { 'cache-control': 'max-age=60, stale-if-error=600' }

  /** Stores "v1" (max-age=60, stale-if-error=600), makes the origin fail `how`, and lets `staleMs` pass. */
  async function storeThenFail(how: 'status-503' | 'reset' | 'hang' | 'refuse', staleMs = 120_000, agentOptions = {}) {
    const clock = useFakeDate()
    const origin = await startFailingOrigin(STALE_IF_ERROR)
    const agent = createTestAgent(agentOptions)
    await get(origin.url, agent)
    if (how === 'refuse') await origin.stop()
    else origin.fail(how)
    clock.advance(staleMs)
    return { origin, agent }
  }

  it('serves the stale entry when the origin answers 503, saying so in Cache-Status', async () => {
    const { origin, agent } = await storeThenFail('status-503')
    const response = await get(origin.url, agent)
    expect(response.status).toBe(200)
    expect(response.body).toBe('v1')
    expect(response.headers['cache-status']).toMatch(/; fwd=stale; fwd-status=503; ttl=-60; key="[\w-]+"; detail=stale-if-error$/)
    expect(cacheInfo(response.headers)).toMatchObject({ status: 'stale', fromCache: true, isExpired: true })
  })

  it('serves the stale entry when the connection is refused', async () => {
    const { origin, agent } = await storeThenFail('refuse')
    const response = await get(origin.url, agent)
    expect(response.body).toBe('v1')
    expect(response.headers['cache-status']).toMatch(/; fwd=stale; ttl=-60; key="[\w-]+"; detail=stale-if-error$/)
  })

  it('serves the stale entry when the origin resets the connection', async () => {
    const { origin, agent } = await storeThenFail('reset')
    expect((await get(origin.url, agent)).body).toBe('v1')
  })

  it('serves the stale entry when the origin does not answer in time', async () => {
    const { origin, agent } = await storeThenFail('hang', 120_000, { agentOptions: { headersTimeout: 200 } })
    expect((await get(origin.url, agent)).body).toBe('v1')
  })

  it('passes the error on once the entry is staler than the window allows', async () => {
    const { origin, agent } = await storeThenFail('status-503', 661_000)
    const response = await get(origin.url, agent)
    expect(response.status).toBe(503)
    expect(response.body).toBe('unavailable')
  })

  it('is granted by the request directive and by the staleIfError option', async () => {
    const clock = useFakeDate()
    const origin = await startFailingOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const lenient = createTestAgent({ staleIfError: true })
    await get(origin.url, agent)
    await get(origin.url, lenient)
    origin.fail('status-503')
    clock.advance(120_000)
    expect((await get(origin.url, agent)).status).toBe(503)
    expect((await get(origin.url, agent, { headers: { 'cache-control': 'stale-if-error=120' } })).body).toBe('v1')
    expect((await get(origin.url, lenient)).body).toBe('v1')
  })

  it('is forbidden by must-revalidate: the 503 and the refused connection reach the caller', async () => {
    const clock = useFakeDate()
    const origin = await startFailingOrigin({ 'cache-control': 'max-age=60, must-revalidate, stale-if-error=600' })
    const agent = createTestAgent({ staleIfError: true })
    await get(origin.url, agent)
    origin.fail('status-503')
    clock.advance(120_000)
    expect((await get(origin.url, agent)).status).toBe(503)
    await origin.stop()
    await expect(get(origin.url, agent)).rejects.toThrow()
  })

  it("never answers a caller that aborted: the abort is the caller's, not the origin's failure", async () => {
    const { origin, agent } = await storeThenFail('hang')
    const controller = new AbortController()
    const pending = request(origin.url, { dispatcher: agent, signal: controller.signal })
    await vi.waitFor(() => expect(origin.requests).toBe(2))
    controller.abort()
    await expect(pending).rejects.toThrow(/abort/i)
  })
})
