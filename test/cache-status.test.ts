import { parseList } from 'structured-headers'
import { fetch } from 'undici'
import { describe, expect, it } from 'vitest'
import { cacheInfo } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { fetchText as get } from './helpers/request.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

describe('Cache-Status', () => {
  it('is a valid RFC 9651 list on a miss and on a hit', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    for (const response of [await get(origin.url, agent), await get(origin.url, agent)]) {
      const [member] = parseList(String(response.headers['cache-status']))
      expect(String(member![0])).toBe('undici-http-cache')
    }
  })

  it('uses the cacheStatus name, and cacheInfo reads it back given that name', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent({ cacheStatus: 'edge-1' })
    await get(origin.url, agent)
    const hit = await get(origin.url, agent)
    expect(hit.headers['cache-status']).toMatch(/^edge-1; hit/)
    expect(cacheInfo(hit.headers, 'edge-1').status).toBe('hit')
    expect(cacheInfo(hit.headers).status).toBeUndefined()
  })

  it('is left out when cacheStatus is false, while caching goes on', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent({ cacheStatus: false })
    await get(origin.url, agent)
    const hit = await get(origin.url, agent)
    expect(hit.headers['cache-status']).toBeUndefined()
    expect(hit.body).toBe('v1')
    expect(hit.headers.age).toBeDefined()
  })

  it('is read by cacheInfo from fetch Headers as from request() headers', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const miss = await fetch(origin.url, { dispatcher: agent })
    await miss.text()
    const hit = await fetch(origin.url, { dispatcher: agent })
    await hit.text()
    expect(cacheInfo(miss.headers)).toMatchObject({ fromCache: false, status: 'miss' })
    expect(cacheInfo(hit.headers)).toMatchObject({ fromCache: true, status: 'hit' })
    expect(cacheInfo(miss.headers).createdAt).toBeInstanceOf(Date)
  })

  it('gives an empty verdict for a response that did not pass through this cache, or a malformed field', () => {
    expect(cacheInfo({})).toMatchObject({ fromCache: false, status: undefined, createdAt: undefined })
    expect(cacheInfo({ 'cache-status': 'undici-http-cache; hit; ttl=' }).status).toBeUndefined()
    expect(cacheInfo({ 'cache-status': 'undici-http-cache; fwd=uri-miss, other; hit' }).status).toBe('miss')
  })
})
