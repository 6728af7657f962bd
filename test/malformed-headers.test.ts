import { describe, expect, it } from 'vitest'
import { createTestAgent } from './helpers/agent.js'
import { fetchText as get } from './helpers/request.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

describe('malformed response headers', () => {
  it.each([
    ['Cache-Control', { 'cache-control': 'max-age=abc, , =, "unterminated' }],
    ['Expires', { expires: 'the day after tomorrow' }],
    ['Date', { date: 'yesterday', 'cache-control': 'max-age=60' }],
    ['Age', { age: 'old', 'cache-control': 'max-age=60' }],
    ['Vary', { vary: ',, ,', 'cache-control': 'max-age=60' }],
  ])('a malformed %s never fails the request', async (_name, headers) => {
    const origin = await startVersionedOrigin(headers)
    const agent = createTestAgent()
    const first = await get(origin.url, agent)
    const second = await get(origin.url, agent)
    expect([first.status, second.status]).toEqual([200, 200])
    expect(first.body).toBe('v1')
    expect(['v1', 'v2']).toContain(second.body)
  })

  it('treats a malformed max-age as no explicit lifetime, and a malformed Age as absent', async () => {
    const badMaxAge = await startVersionedOrigin({ 'cache-control': 'max-age=abc' })
    const agent = createTestAgent()
    await get(badMaxAge.url, agent)
    expect((await get(badMaxAge.url, agent)).body).toBe('v2')

    const badAge = await startVersionedOrigin({ 'cache-control': 'max-age=60', age: 'old' })
    await get(badAge.url, agent)
    const hit = await get(badAge.url, agent)
    expect(hit.body).toBe('v1')
    expect(Number(hit.headers.age)).toBeLessThan(60)
  })
})
