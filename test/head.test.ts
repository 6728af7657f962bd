import { describe, expect, it } from 'vitest'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { fetchText as get } from './helpers/request.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

describe('HEAD', () => {
  it('is answered from a stored GET response, headers only', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60', 'x-version': 'stored' })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const head = await get(origin.url, agent, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.body).toBe('')
    expect(head.headers['x-version']).toBe('stored')
    expect(statusOf(head.headers)).toBe('hit')
    expect(origin.requests).toBe(1)
  })

  it('is stored and served to later HEAD requests, but never gives its empty body to a GET', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    await get(origin.url, agent, { method: 'HEAD' })
    const secondHead = await get(origin.url, agent, { method: 'HEAD' })
    expect(statusOf(secondHead.headers)).toBe('hit')
    expect(origin.requests).toBe(1)
    const getAfterHead = await get(origin.url, agent)
    expect(getAfterHead.body).toBe('v2')
    expect(statusOf(getAfterHead.headers)).toBe('miss')
    // The GET response took the HEAD response's place: both methods are now served from it.
    expect((await get(origin.url, agent)).body).toBe('v2')
    expect(statusOf((await get(origin.url, agent, { method: 'HEAD' })).headers)).toBe('hit')
    expect(origin.requests).toBe(2)
  })

  it('does not replace a stored GET response when it has to go to the origin', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    await get(origin.url, agent)
    await get(origin.url, agent, { method: 'HEAD', headers: { 'cache-control': 'no-cache' } })
    const afterwards = await get(origin.url, agent)
    expect(afterwards.body).toBe('v1')
    expect(statusOf(afterwards.headers)).toBe('hit')
  })
})
