import { fetch, request } from 'undici'
import { describe, expect, it } from 'vitest'
import { cacheInfo, type CacheOptions } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

const MIB = 1024 * 1024

describe('filter', () => {
  // requests-cache's example: do not cache bodies over 1 MiB.
  const filterBySize: CacheOptions['filter'] = (_request, response) => response.body.byteLength <= MIB

  it('decides on write with the whole body: a body over 1 MiB is not stored, a small one is', async () => {
    const origin = await startOrigin((incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end(Buffer.alloc(incoming.url === '/large' ? MIB + 1 : 1024, 'x'))
    })
    const agent = createTestAgent({ filter: filterBySize })
    for (const path of ['large', 'small', 'large', 'small']) {
      const response = await request(`${origin.url}${path}`, { dispatcher: agent })
      expect((await response.body.arrayBuffer()).byteLength).toBe(path === 'large' ? MIB + 1 : 1024)
    }
    expect(origin.received.map((received) => received.url)).toEqual(['/large', '/small', '/large'])
    expect(await agent.cache.urls()).toEqual([`${origin.url}small`])
  })

  it('is shown a copy of the fields: a filter that changes them changes nothing stored or served', async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'x-token': 'secret' }).end('original body')
    })
    const agent = createTestAgent({
      filter: (_request, response) => {
        response.headers['x-token'] = 'REDACTED' // as a filter that logs what it sees might
        return true
      },
    })
    await get(origin.url, agent)
    for (const response of [await get(origin.url, agent), await get(origin.url, agent)]) {
      expect(statusOf(response.headers)).toBe('hit')
      expect([response.headers['x-token'], response.body]).toEqual(['secret', 'original body'])
    }
  })

  it('decides on read: a stored response the filter now refuses is not served, and the request goes to the origin', async () => {
    let count = 0
    const origin = await startOrigin((_incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end(`v${++count}`)
    })
    let allow = true
    const agent = createTestAgent({ filter: () => allow })
    await get(origin.url, agent)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('hit')
    allow = false
    const refused = await fetch(origin.url, { dispatcher: agent })
    expect([await refused.text(), cacheInfo(refused.headers).status]).toEqual(['v2', 'miss'])
  })

  it('is shown the request and the response', async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.setHeader('x-kind', 'report')
      response.end('body')
    })
    const seen: unknown[] = []
    const agent = createTestAgent({
      filter: (cacheRequest, response) => {
        seen.push([cacheRequest.method, cacheRequest.url, response.status, response.headers['x-kind'], Buffer.from(response.body).toString()])
        return true
      },
    })
    await get(`${origin.url}r?id=1`, agent)
    expect(seen).toEqual([['GET', `${origin.url}r?id=1`, 200, 'report', 'body']])
  })

  it('counts as "do not cache" when it throws, and the request succeeds', async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end('fine')
    })
    const agent = createTestAgent({
      filter: () => {
        throw new Error('filter bug')
      },
    })
    const responses = [await get(origin.url, agent), await get(origin.url, agent)]
    expect(responses.map((response) => [response.status, response.body])).toEqual([
      [200, 'fine'],
      [200, 'fine'],
    ])
    expect(origin.requests).toBe(2)
    expect(agent.cache.stats).toMatchObject({ stored: 0, errors: 2 })
  })

  it('takes only a boolean: a filter returning a Promise does not cache, and counts an error', async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end('fine')
    })
    const agent = createTestAgent({ filter: (async () => true) as never })
    await get(origin.url, agent)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('miss')
    expect(agent.cache.stats).toMatchObject({ stored: 0, errors: 2 })
  })

  it('applies to cache.get() as to a request', async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end('fine')
    })
    let allow = true
    const agent = createTestAgent({ filter: () => allow })
    await get(origin.url, agent)
    expect(await agent.cache.get(origin.url)).toBeDefined()
    allow = false
    expect(await agent.cache.get(origin.url)).toBeUndefined()
  })
})
