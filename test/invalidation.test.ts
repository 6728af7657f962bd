import type { OutgoingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'
import { describe, expect, it } from 'vitest'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

type UnsafeAnswer = { status: number; headers?: OutgoingHttpHeaders }

/**
 * An origin where GET answers each path with "<path> v<n>" (max-age=60, counting per path), and any other
 * method gets `unsafeAnswer` (changeable between requests).
 */
async function startResourceOrigin(vary?: string): Promise<Origin & { unsafeAnswer: UnsafeAnswer }> {
  const versions = new Map<string, number>()
  const state = { unsafeAnswer: { status: 200 } as UnsafeAnswer }
  const origin = await startOrigin((request, response) => {
    const path = request.url ?? '/'
    if (request.method === 'GET' || request.method === 'HEAD') {
      const version = (versions.get(path) ?? 0) + 1
      versions.set(path, version)
      response.writeHead(200, { 'cache-control': 'max-age=60', ...(vary ? { vary } : {}) })
      return void response.end(`${path} v${version}`)
    }
    request.resume()
    response.writeHead(state.unsafeAnswer.status, state.unsafeAnswer.headers ?? {})
    response.end()
  })
  return Object.defineProperty(origin as Origin & { unsafeAnswer: UnsafeAnswer }, 'unsafeAnswer', {
    get: () => state.unsafeAnswer,
    set: (answer: UnsafeAnswer) => (state.unsafeAnswer = answer),
  })
}

/** Whether the next GET of `url` is served from the cache. */
async function isStillStored(url: string, agent: Dispatcher): Promise<boolean> {
  return statusOf((await get(url, agent)).headers) === 'hit'
}

describe('invalidation after unsafe methods', () => {
  it.each(['POST', 'PUT', 'PATCH', 'DELETE'] as const)('forgets the stored target of a successful %s', async (method) => {
    const origin = await startResourceOrigin()
    const agent = createTestAgent()
    const url = `${origin.origin}/item`
    await get(url, agent)
    const unsafe = await get(url, agent, { method, body: 'change' })
    expect(unsafe.headers['cache-status']).toMatch(/fwd=method/)
    const next = await get(url, agent)
    expect(next.body).toBe('/item v2')
    expect(next.headers['cache-status']).toMatch(/fwd=uri-miss/)
  })

  it('forgets the target after a 3xx, and keeps it after an error response', async () => {
    const origin = await startResourceOrigin()
    const agent = createTestAgent()
    const url = `${origin.origin}/item`
    await get(url, agent)
    for (const status of [404, 500]) {
      origin.unsafeAnswer = { status }
      await get(url, agent, { method: 'POST', body: 'x' })
      expect(await isStillStored(url, agent)).toBe(true)
    }
    origin.unsafeAnswer = { status: 303, headers: { location: '/elsewhere' } }
    await get(url, agent, { method: 'POST', body: 'x' })
    expect(await isStillStored(url, agent)).toBe(false)
  })

  it('forgets the Location and Content-Location targets on the same origin, relative or absolute', async () => {
    const origin = await startResourceOrigin()
    const agent = createTestAgent()
    for (const path of ['/list', '/created', '/other']) await get(`${origin.origin}${path}`, agent)
    origin.unsafeAnswer = { status: 201, headers: { location: '/created', 'content-location': `${origin.origin}/list#top` } }
    await get(`${origin.origin}/list/new`, agent, { method: 'POST', body: 'x' })
    expect(await isStillStored(`${origin.origin}/created`, agent)).toBe(false)
    expect(await isStillStored(`${origin.origin}/list`, agent)).toBe(false)
    expect(await isStillStored(`${origin.origin}/other`, agent)).toBe(true)
  })

  it("never forgets another origin's entries named by Location", async () => {
    const stored = await startResourceOrigin()
    const other = await startResourceOrigin()
    const agent = createTestAgent()
    await get(`${stored.origin}/page`, agent)
    other.unsafeAnswer = { status: 201, headers: { location: `${stored.origin}/page`, 'content-location': `${stored.origin}/page` } }
    await get(`${other.origin}/submit`, agent, { method: 'POST', body: 'x' })
    expect(await isStillStored(`${stored.origin}/page`, agent)).toBe(true)
  })

  it('forgets every Vary variant of the target', async () => {
    const origin = await startResourceOrigin('accept-language')
    const agent = createTestAgent()
    const url = `${origin.origin}/page`
    for (const language of ['en', 'fr']) await get(url, agent, { headers: { 'accept-language': language } })
    await get(url, agent, { method: 'DELETE' })
    for (const language of ['en', 'fr']) {
      const response = await get(url, agent, { headers: { 'accept-language': language } })
      expect(statusOf(response.headers)).toBe('miss')
    }
  })

  it('leaves entries alone after safe methods it does not cache', async () => {
    const origin = await startResourceOrigin()
    const agent = createTestAgent()
    const url = `${origin.origin}/item`
    await get(url, agent)
    await get(url, agent, { method: 'OPTIONS' })
    expect(await isStillStored(url, agent)).toBe(true)
  })
})
