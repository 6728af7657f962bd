import type { OutgoingHttpHeaders } from 'node:http'
import { fetch } from 'undici'
import { describe, expect, it } from 'vitest'
import { cacheInfo } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { startValidatingOrigin } from './helpers/validating-origin.js'

/** An origin answering every path with `headers` (by path, when a function) and status 200 unless told. */
function startOriginWith(headers: (path: string) => OutgoingHttpHeaders, status = 200): Promise<Origin> {
  let count = 0
  return startOrigin((incoming, response) => {
    response.writeHead(status, headers(incoming.url ?? '/'))
    response.end(`v${++count}`)
  })
}

describe('defaultTtl', () => {
  it('gives freshness to a storable response that carries none, and it expires after that', async () => {
    const clock = useFakeDate()
    const origin = await startOriginWith(() => ({}))
    const agent = createTestAgent({ defaultTtl: 30 })
    await get(origin.url, agent)
    const hit = await get(origin.url, agent)
    expect(hit.body).toBe('v1')
    expect(hit.headers['cache-status']).toMatch(/; hit; ttl=30/)
    clock.advance(31_000)
    expect((await get(origin.url, agent)).body).toBe('v2')
  })

  it('never overrides the origin: max-age, Expires and no-cache win', async () => {
    const clock = useFakeDate()
    const origin = await startOriginWith((path) =>
      path === '/max-age' ? { 'cache-control': 'max-age=5' } : path === '/expires' ? { expires: new Date(Date.now() + 5_000).toUTCString() } : { 'cache-control': 'no-cache' },
    )
    const agent = createTestAgent({ defaultTtl: 3600 })
    for (const path of ['max-age', 'expires', 'no-cache']) await get(`${origin.url}${path}`, agent)
    clock.advance(6_000)
    const answers = await Promise.all(['max-age', 'expires', 'no-cache'].map((path) => get(`${origin.url}${path}`, agent)))
    expect(answers.map((answer) => answer.body)).toEqual(['v4', 'v5', 'v6'])
  })

  it('is the lifetime a 304 renews a heuristic entry with', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'body', etag: '"a"' })
    const agent = createTestAgent({ defaultTtl: 10 })
    await get(origin.url, agent)
    clock.advance(11_000)
    const revalidated = await get(origin.url, agent)
    expect(cacheInfo(revalidated.headers).revalidated).toBe(true)
    expect(revalidated.headers['cache-status']).toMatch(/fwd-status=304; stored; ttl=10/)
    clock.advance(5_000)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('hit')
    expect(origin.statuses).toEqual([200, 304])
  })
})

describe('urlsExpireAfter', () => {
  it('applies the first matching rule: globs on host and path, RegExps on the URL, then defaultTtl', async () => {
    const clock = useFakeDate()
    const origin = await startOriginWith(() => ({}))
    const agent = createTestAgent({
      defaultTtl: 100,
      urlsExpireAfter: [
        ['127.0.0.1/static/**', 'never'],
        [/\/api\/live/, 5],
        ['127.0.0.1/api/*', 50],
      ],
    })
    const paths = ['static/app/main.js', 'api/live', 'api/list', 'other']
    for (const path of paths) await get(`${origin.url}${path}`, agent)
    const ttls = await Promise.all(paths.map(async (path) => (await get(`${origin.url}${path}`, agent)).headers['cache-status']))
    expect(ttls.map((value) => /ttl=(\d+)/.exec(String(value))?.[1])).toEqual(['3153600000', '5', '50', '100'])
    clock.advance(60_000)
    const afterMinute = await Promise.all(paths.map((path) => get(`${origin.url}${path}`, agent)))
    expect(afterMinute.map((response) => statusOf(response.headers))).toEqual(['hit', 'miss', 'miss', 'hit'])
  })

  it('matches a host named alone on every path, and a RegExp with the g flag every time', async () => {
    const origin = await startOriginWith(() => ({}))
    const agent = createTestAgent({ urlsExpireAfter: [[/\/g\//g, 7], ['127.0.0.1', 9]] })
    const ttlOf = async (path: string) => /ttl=(\d+)/.exec(String((await get(`${origin.url}${path}`, agent)).headers['cache-status']))?.[1]
    expect([await ttlOf('g/1'), await ttlOf('g/2'), await ttlOf('g/3'), await ttlOf('deep/er/path')]).toEqual(['7', '7', '7', '9'])
  })

  it('matches path segments that start with a dot like any other', async () => {
    const origin = await startOriginWith(() => ({ 'cache-control': 'max-age=60' }))
    const agent = createTestAgent({ urlsExpireAfter: [['*/static/**', 'never'], ['127.0.0.1', 'no-store']] })
    expect(statusOf((await get(`${origin.url}.well-known/openid-configuration`, agent)).headers)).toBe('bypass')
    expect(statusOf((await get(`${origin.url}api/.internal/x`, agent)).headers)).toBe('bypass')
    expect(statusOf((await get(`${origin.url}static/.vite/manifest.json`, agent)).headers)).toBe('miss')
    expect(await agent.cache.urls()).toEqual([`${origin.url}static/.vite/manifest.json`])
  })

  it("never stores a URL ruled 'no-store', and serves nothing stored for it", async () => {
    const origin = await startOriginWith(() => ({ 'cache-control': 'max-age=60' }))
    const agent = createTestAgent({ urlsExpireAfter: [['*/private/**', 'no-store']] })
    await get(`${origin.url}private/me`, agent)
    const second = await fetch(`${origin.url}private/me`, { dispatcher: agent })
    expect(await second.text()).toBe('v2')
    expect(cacheInfo(second.headers).status).toBe('bypass')
    expect(await agent.cache.urls()).toEqual([])
  })
})

describe('allowedStatuses', () => {
  it('stores only the listed statuses', async () => {
    const origin = await startOriginWith(() => ({ 'cache-control': 'max-age=60' }), 404)
    const agent = createTestAgent({ allowedStatuses: [200] })
    await get(origin.url, agent)
    const second = await get(origin.url, agent)
    expect([second.status, second.body, statusOf(second.headers)]).toEqual([404, 'v2', 'miss'])
  })

  it('with a configured ttl, stores a listed status that RFC 9111 would store only with explicit freshness', async () => {
    const origin = await startOriginWith(() => ({}), 500)
    const listed = createTestAgent({ allowedStatuses: [200, 500], defaultTtl: 60 })
    const unlisted = createTestAgent({ defaultTtl: 60 })
    for (const agent of [listed, unlisted]) await get(origin.url, agent)
    const [fromListed, fromUnlisted] = [await get(origin.url, listed), await get(origin.url, unlisted)]
    expect([fromListed.status, fromListed.body, statusOf(fromListed.headers)]).toEqual([500, 'v1', 'hit'])
    expect([fromUnlisted.status, statusOf(fromUnlisted.headers)]).toEqual([500, 'miss'])
  })
})
