import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'

async function get(url: string, agent: ReturnType<typeof createTestAgent>, headers: Record<string, string> = {}) {
  const response = await request(url, { dispatcher: agent, headers })
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() }
}

describe('freshness', () => {
  it('serves a response with max-age from the cache until it is stale, with a growing Age', async () => {
    const clock = useFakeDate()
    let version = 0
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end(`v${++version}`)
    })
    const agent = createTestAgent()

    const first = await get(origin.url, agent)
    expect(first.body).toBe('v1')
    expect(statusOf(first.headers)).toBe('miss')
    expect(first.headers['cache-status']).toMatch(/fwd=uri-miss; stored; ttl=60/)

    clock.advance(30_000)
    const second = await get(origin.url, agent)
    expect(second.body).toBe('v1')
    expect(second.headers.age).toBe('30')
    expect(statusOf(second.headers)).toBe('hit')
    expect(second.headers['cache-status']).toMatch(/; hit; ttl=30/)

    clock.advance(31_000)
    const third = await get(origin.url, agent)
    expect(third.body).toBe('v2')
    expect(statusOf(third.headers)).toBe('miss')
    expect(third.headers['cache-status']).toMatch(/fwd=stale/)
    expect(origin.requests).toBe(2)
  })
})
