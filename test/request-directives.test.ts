import { describe, expect, it } from 'vitest'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { fetchText as get } from './helpers/request.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

/** Stores a response with `responseCacheControl`, waits `advanceMs`, then sends a request with `requestHeaders`. */
async function afterStoring(
  responseCacheControl: string,
  advanceMs: number,
  requestHeaders: Record<string, string>,
  agentOptions: { shared?: boolean } = {},
) {
  const clock = useFakeDate()
  const origin = await startVersionedOrigin({ 'cache-control': responseCacheControl })
  const agent = createTestAgent(agentOptions)
  await get(origin.url, agent)
  clock.advance(advanceMs)
  const response = await get(origin.url, agent, { headers: requestHeaders })
  return { response, originRequests: origin.requests }
}

describe('request directives', () => {
  it('no-cache sends the request to the origin even when a fresh response is stored', async () => {
    const { response, originRequests } = await afterStoring('max-age=60', 0, { 'cache-control': 'no-cache' })
    expect(response.body).toBe('v2')
    expect(originRequests).toBe(2)
    expect(response.headers['cache-status']).toMatch(/fwd=request/)
  })

  it('Pragma: no-cache counts as no-cache when there is no Cache-Control', async () => {
    expect((await afterStoring('max-age=60', 0, { pragma: 'no-cache' })).originRequests).toBe(2)
    expect((await afterStoring('max-age=60', 0, { pragma: 'no-cache', 'cache-control': 'max-stale' })).originRequests).toBe(1)
  })

  it('max-age refuses a stored response older than it allows', async () => {
    expect((await afterStoring('max-age=60', 10_000, { 'cache-control': 'max-age=20' })).originRequests).toBe(1)
    expect((await afterStoring('max-age=60', 30_000, { 'cache-control': 'max-age=20' })).originRequests).toBe(2)
  })

  it('min-fresh refuses a stored response that will not stay fresh that long', async () => {
    expect((await afterStoring('max-age=60', 10_000, { 'cache-control': 'min-fresh=40' })).originRequests).toBe(1)
    expect((await afterStoring('max-age=60', 30_000, { 'cache-control': 'min-fresh=40' })).originRequests).toBe(2)
  })

  it('max-stale lets a stale response be served, within its limit', async () => {
    const within = await afterStoring('max-age=10', 30_000, { 'cache-control': 'max-stale=60' })
    expect(within.originRequests).toBe(1)
    expect(within.response.body).toBe('v1')
    expect(statusOf(within.response.headers)).toBe('stale')
    expect(within.response.headers['cache-status']).toMatch(/; hit; ttl=-20/)
    expect((await afterStoring('max-age=10', 30_000, { 'cache-control': 'max-stale=10' })).originRequests).toBe(2)
    expect((await afterStoring('max-age=10', 3_600_000, { 'cache-control': 'max-stale' })).originRequests).toBe(1)
  })

  it('max-stale never serves what must-revalidate, no-cache or (shared) proxy-revalidate forbid', async () => {
    const maxStale = { 'cache-control': 'max-stale' }
    expect((await afterStoring('max-age=10, must-revalidate', 30_000, maxStale)).originRequests).toBe(2)
    expect((await afterStoring('max-age=10, no-cache', 30_000, maxStale)).originRequests).toBe(2)
    expect((await afterStoring('max-age=10, proxy-revalidate', 30_000, maxStale, { shared: true })).originRequests).toBe(2)
    expect((await afterStoring('max-age=10, proxy-revalidate', 30_000, maxStale, { shared: false })).originRequests).toBe(1)
  })

  it('must-revalidate does not stop a fresh response being served', async () => {
    expect((await afterStoring('max-age=60, must-revalidate', 10_000, {})).originRequests).toBe(1)
  })

  it('only-if-cached is answered 504 when nothing fresh is stored, without asking the origin', async () => {
    const { response, originRequests } = await afterStoring('max-age=10', 30_000, { 'cache-control': 'only-if-cached' })
    expect(response.status).toBe(504)
    expect(originRequests).toBe(1)
    const unseen = await startVersionedOrigin({})
    const agent = createTestAgent()
    const nothingStored = await get(unseen.url, agent, { headers: { 'cache-control': 'only-if-cached' } })
    expect(nothingStored.status).toBe(504)
    expect(unseen.requests).toBe(0)
  })

  it('only-if-cached is served a fresh stored response', async () => {
    const { response } = await afterStoring('max-age=60', 1_000, { 'cache-control': 'only-if-cached' })
    expect(response.status).toBe(200)
    expect(response.body).toBe('v1')
  })

  it('only-if-cached never asks the origin for a conditional, Range or If-Match request either', async () => {
    const onlyIfCached = { 'cache-control': 'only-if-cached' }
    // Fresh, the validators not matching: the stored response answers in full.
    const fresh = await afterStoring('max-age=60', 1_000, { ...onlyIfCached, 'if-none-match': '"other"' })
    expect([fresh.response.status, fresh.response.body, fresh.originRequests]).toEqual([200, 'v1', 1])
    // Stale, or a request the store never answers: 504.
    for (const headers of [{ 'if-none-match': '"other"' }, { 'if-modified-since': new Date(0).toUTCString() }] as Record<string, string>[]) {
      const stale = await afterStoring('max-age=10', 30_000, { ...onlyIfCached, ...headers })
      expect([stale.response.status, stale.originRequests]).toEqual([504, 1])
    }
    for (const headers of [{ range: 'bytes=0-1' }, { 'if-match': '"a"' }, { 'if-unmodified-since': new Date().toUTCString() }] as Record<string, string>[]) {
      const bypassed = await afterStoring('max-age=60', 1_000, { ...onlyIfCached, ...headers })
      expect([bypassed.response.status, bypassed.originRequests]).toEqual([504, 1])
    }
  })

  it('ignores malformed directives instead of failing the request', async () => {
    const { response, originRequests } = await afterStoring('max-age=60', 1_000, { 'cache-control': 'max-age="x", ,=, min-fresh=-1' })
    expect(response.status).toBe(200)
    expect(originRequests).toBe(1)
  })
})
