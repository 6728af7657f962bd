import { describe, expect, it } from 'vitest'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

/** Sends the same GET twice, `advanceMs` apart, and says whether the second was served from the cache. */
async function isReused(headers: Record<string, string>, advanceMs: number, agentOptions = {}): Promise<boolean> {
  const clock = useFakeDate()
  const origin = await startVersionedOrigin({ date: new Date().toUTCString(), ...headers })
  const agent = createTestAgent(agentOptions)
  await get(origin.url, agent)
  clock.advance(advanceMs)
  const second = await get(origin.url, agent)
  return second.body === 'v1' && origin.requests === 1
}

describe('freshness', () => {
  it.each([
    ['with', undefined],
    ['without', false as const],
  ])('gives every hit in a run of hits the Age and ttl of its own moment, to the second, %s Cache-Status', async (_with, cacheStatus) => {
    const clock = useFakeDate() // a whole second, so the origin's Date is exact
    // A heuristic lifetime of 1.5 s (10% of the 15 s since Last-Modified): Age (rounded down) and ttl
    // (rounded up) then change at different moments, so a hit that reused either from the last would show.
    const origin = await startVersionedOrigin({ date: new Date().toUTCString(), 'last-modified': new Date(Date.now() - 15_000).toUTCString() })
    const agent = createTestAgent(cacheStatus === false ? { cacheStatus } : {})
    await get(origin.url, agent)
    const seen: Array<[string, string | undefined]> = []
    for (const stepMs of [0, 300, 300, 400]) {
      clock.advance(stepMs)
      const hit = await get(origin.url, agent)
      expect(hit.body).toBe('v1')
      seen.push([String(hit.headers.age), /; ttl=(\d+)/.exec(String(hit.headers['cache-status']))?.[1]])
    }
    const ttl = (value: string): string | undefined => (cacheStatus === false ? undefined : value)
    expect(seen).toEqual([
      ['0', ttl('2')], // 1.5 s left
      ['0', ttl('2')], // 1.2 s left
      ['0', ttl('1')], // 0.9 s left: ttl changes, Age does not
      ['1', ttl('1')], // 0.5 s left: Age changes, ttl does not
    ])
    expect(origin.requests).toBe(1)
  })

  it('hands hits within one second the same fresh fields, made once, and makes them again the next second', async () => {
    const clock = useFakeDate()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    await get(origin.url, agent)
    /** The raw Buffers of a hit's fields, as undici's clients read them from the controller. */
    const rawFields = (): Promise<Map<string, Buffer>> =>
      new Promise((resolve, reject) => {
        const fields = new Map<string, Buffer>()
        agent.dispatch(
          { origin: new URL(origin.url).origin, path: new URL(origin.url).pathname, method: 'GET', headers: {} },
          {
            onRequestStart() {},
            onResponseStart(controller) {
              const raw = controller.rawHeaders as Buffer[]
              for (let index = 0; index < raw.length; index += 2) fields.set(raw[index]!.toString('latin1'), raw[index + 1]!)
            },
            onResponseData() {},
            onResponseEnd: () => resolve(fields),
            onResponseError: (_controller, error) => reject(error),
          },
        )
      })
    const first = await rawFields()
    clock.advance(300)
    const sameSecond = await rawFields()
    clock.advance(1000)
    const nextSecond = await rawFields()
    for (const name of ['age', 'cache-status', 'content-length']) {
      expect(sameSecond.get(name)).toBe(first.get(name)) // reused, not built again
    }
    expect(nextSecond.get('age')).not.toBe(first.get('age'))
    expect([first.get('age')?.toString(), nextSecond.get('age')?.toString()]).toEqual(['0', '1'])
  })

  it('serves a response with max-age from the cache until it is stale, with a growing Age', async () => {
    const clock = useFakeDate()
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
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

  it('counts the Age the response arrived with against its max-age', async () => {
    expect(await isReused({ 'cache-control': 'max-age=60', age: '50' }, 5_000)).toBe(true)
    expect(await isReused({ 'cache-control': 'max-age=60', age: '50' }, 11_000)).toBe(false)
  })

  it('counts a Date in the past as age already spent (apparent age)', async () => {
    const clock = useFakeDate()
    const origin = await startVersionedOrigin(() => ({
      'cache-control': 'max-age=60',
      date: new Date(Date.now() - 50_000).toUTCString(),
    }))
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(11_000)
    expect((await get(origin.url, agent)).body).toBe('v2')
  })

  it('uses Expires relative to Date when there is no max-age', async () => {
    const now = Date.UTC(2026, 0, 1, 12)
    const expires = new Date(now + 100_000).toUTCString()
    expect(await isReused({ expires }, 90_000)).toBe(true)
    expect(await isReused({ expires }, 101_000)).toBe(false)
  })

  it('lets max-age win over Expires', async () => {
    const expires = new Date(Date.UTC(2026, 0, 1, 12) + 1_000_000).toUTCString()
    expect(await isReused({ 'cache-control': 'max-age=10', expires }, 20_000)).toBe(false)
  })

  it('treats an invalid Expires as already expired, even where Last-Modified would give freshness', async () => {
    const lastModified = new Date(Date.UTC(2026, 0, 1, 12) - 1_000_000).toUTCString()
    expect(await isReused({ 'last-modified': lastModified }, 1_000)).toBe(true)
    expect(await isReused({ 'last-modified': lastModified, expires: '0' }, 1_000)).toBe(false)
    expect(await isReused({ 'last-modified': lastModified, expires: 'not a date' }, 1_000)).toBe(false)
  })

  it('gives a response with only Last-Modified 10% of its age as heuristic freshness', async () => {
    const lastModified = new Date(Date.UTC(2026, 0, 1, 12) - 1_000_000).toUTCString() // 1000 s before Date
    expect(await isReused({ 'last-modified': lastModified }, 90_000)).toBe(true) // 10% = 100 s
    expect(await isReused({ 'last-modified': lastModified }, 110_000)).toBe(false)
  })

  it('gives no heuristic freshness to a status that is not cacheable by default', async () => {
    const clock = useFakeDate()
    const lastModified = new Date(Date.now() - 1_000_000).toUTCString()
    const origin = await startVersionedOrigin({ 'last-modified': lastModified, location: '/elsewhere' }, 302)
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(1_000)
    await get(origin.url, agent)
    expect(origin.requests).toBe(2)
  })

  it('applies s-maxage only in a shared cache', async () => {
    const headers = { 'cache-control': 'max-age=10, s-maxage=100' }
    expect(await isReused(headers, 50_000, { shared: true })).toBe(true)
    expect(await isReused(headers, 50_000, { shared: false })).toBe(false)
  })

  it('keeps a proxy-revalidate response fresh for its max-age in a shared cache too: it only may not be served stale', async () => {
    expect(await isReused({ 'cache-control': 'max-age=60, proxy-revalidate' }, 30_000, { shared: true })).toBe(true)
    expect(await isReused({ 'cache-control': 'max-age=60, proxy-revalidate' }, 61_000, { shared: true })).toBe(false)
  })

  it('reads a max-age too large to represent as 2^31 seconds, not as no freshness at all', async () => {
    expect(await isReused({ 'cache-control': `max-age=${'9'.repeat(400)}` }, 365 * 24 * 3600 * 1000)).toBe(true)
  })

  it('keeps an immutable response without explicit lifetime fresh for a day', async () => {
    expect(await isReused({ 'cache-control': 'immutable' }, 23 * 3600_000)).toBe(true)
  })

  it('reports createdAt, expires and isExpired through cacheInfo', async () => {
    useFakeDate()
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=100')
      response.end('body')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const { cacheInfo } = await import('../lib/index.js')
    const info = cacheInfo((await get(origin.url, agent)).headers)
    expect(info).toMatchObject({ fromCache: true, status: 'hit', isExpired: false, revalidated: false })
    expect(info.createdAt?.getTime()).toBe(Date.now())
    expect(info.expires?.getTime()).toBe(Date.now() + 100_000)
    expect(info.cacheKey).toMatch(/^[\w-]{43}$/)
  })
})
