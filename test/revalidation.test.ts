import { gzipSync } from 'node:zlib'
import { fetch, getGlobalDispatcher, setGlobalDispatcher } from 'undici'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { cacheInfo } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { startValidatingOrigin } from './helpers/validating-origin.js'

const LAST_MODIFIED = 'Thu, 01 Jan 2026 00:00:00 GMT'

describe('revalidation of a stale entry', () => {
  it('asks with If-None-Match, answers a 304 with the stored body, and renews the entry so the next request is a hit', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'stored body', etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)

    clock.advance(61_000)
    const revalidated = await get(origin.url, agent)
    expect(origin.received[1]!.headers['if-none-match']).toBe('"a"')
    expect(origin.statuses).toEqual([200, 304])
    expect(revalidated.status).toBe(200) // the caller never sees the 304 it did not ask for
    expect(revalidated.body).toBe('stored body')
    expect(revalidated.headers['content-length']).toBe('11')
    expect(revalidated.headers['cache-status']).toMatch(/; fwd=stale; fwd-status=304; stored; ttl=60/)
    expect(cacheInfo(revalidated.headers)).toMatchObject({ status: 'revalidated', revalidated: true, fromCache: true })

    clock.advance(30_000)
    const hit = await get(origin.url, agent)
    expect(statusOf(hit.headers)).toBe('hit')
    expect(hit.body).toBe('stored body')
    expect(hit.headers.age).toBe('30')
    expect(origin.requests).toBe(2)
  })

  it('asks with If-Modified-Since when the entry has only Last-Modified', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'dated', lastModified: LAST_MODIFIED, headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    const revalidated = await get(origin.url, agent)
    expect(origin.received[1]!.headers['if-modified-since']).toBe(LAST_MODIFIED)
    expect(origin.received[1]!.headers['if-none-match']).toBeUndefined()
    expect(revalidated.body).toBe('dated')
    expect(statusOf(revalidated.headers)).toBe('revalidated')
  })

  it("takes the 304's Cache-Control and new fields into the entry: its freshness is the 304's", async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({
      body: 'body',
      etag: '"a"',
      headers: { 'cache-control': 'max-age=60', 'x-version': '1' },
      notModifiedHeaders: { 'cache-control': 'max-age=600', 'x-version': '2', 'x-added-by-304': 'yes' },
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    await get(origin.url, agent)

    clock.advance(500_000) // stale under the old max-age=60, fresh under the 304's max-age=600
    const hit = await get(origin.url, agent)
    expect(statusOf(hit.headers)).toBe('hit')
    expect(hit.headers['cache-control']).toBe('max-age=600')
    expect(hit.headers['x-version']).toBe('2')
    expect(hit.headers['x-added-by-304']).toBe('yes')
    expect(origin.requests).toBe(2)
  })

  it("restarts the entry's age from the 304: an Age the stored response came with no longer counts", async () => {
    // The 200 came through an upstream cache (Age 150, beyond its max-age=100); the origin's 304 has no Age.
    const origin = await startOrigin((request, response) => {
      if (request.headers['if-none-match'] === '"a"') return void response.writeHead(304, { etag: '"a"', 'cache-control': 'max-age=100' }).end()
      response.writeHead(200, { etag: '"a"', 'cache-control': 'max-age=100', age: '150' }).end('aged')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const revalidated = await get(origin.url, agent)
    expect(statusOf(revalidated.headers)).toBe('revalidated')
    const hit = await get(origin.url, agent)
    expect(statusOf(hit.headers)).toBe('hit')
    expect(hit.headers.age).toBe('0')
    expect(origin.requests).toBe(2)
  })

  it('dates the entry from the arrival of a 304 without Date, not from the stored response\'s older Date', async () => {
    const origin = await startOrigin((request, response) => {
      if (request.headers['if-none-match'] === '"a"') {
        response.sendDate = false // an origin without a clock (RFC 9110 §6.6.1)
        return void response.writeHead(304, { etag: '"a"', 'cache-control': 'max-age=100' }).end()
      }
      const date = new Date(Date.now() - 200_000).toUTCString()
      response.writeHead(200, { etag: '"a"', 'cache-control': 'max-age=100', date }).end('dated')
    })
    const agent = createTestAgent()
    await get(origin.url, agent) // 200 s old on arrival: stale
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('revalidated')
    const hit = await get(origin.url, agent)
    expect(statusOf(hit.headers)).toBe('hit')
    expect(Date.parse(String(hit.headers.date))).toBeGreaterThan(Date.now() - 5_000)
    expect(origin.requests).toBe(2)
  })

  it('answers a 304 to a request without validators (the entry has none) from the entry, and renews it', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((request, response) => {
      if (origin.requests > 1) return void response.writeHead(304, { 'cache-control': 'max-age=60' }).end()
      response.writeHead(200, { 'cache-control': 'max-age=60' }).end('no validators')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    const revalidated = await get(origin.url, agent)
    expect(origin.received[1]!.headers['if-none-match']).toBeUndefined()
    expect(revalidated.status).toBe(200)
    expect(revalidated.body).toBe('no validators')
    expect(statusOf(revalidated.headers)).toBe('revalidated')
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('hit')
    expect(origin.requests).toBe(2)
  })

  it('revalidates a stored POST with the full request: a POST whose If-None-Match matches is refused', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((request, response) => {
      // RFC 9110 §13.1.2: a matching If-None-Match on a POST means "do not perform it": 412.
      if (request.headers['if-none-match'] === '"a"') return void response.writeHead(412).end()
      response.writeHead(200, { etag: '"a"', 'cache-control': 'max-age=60' }).end(`answer ${origin.requests}`)
    })
    const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
    await get(origin.url, agent, { method: 'POST', body: 'query' })
    clock.advance(61_000)
    const again = await get(origin.url, agent, { method: 'POST', body: 'query' })
    expect(origin.received[1]!.headers['if-none-match']).toBeUndefined()
    expect(again.status).toBe(200)
    expect(again.body).toBe('answer 2')
  })

  it('keeps the stored framing and coding when a 304 leaves out Content-Encoding: a gzip body still decodes', async () => {
    const clock = useFakeDate()
    const text = 'a gzip-coded body '.repeat(100)
    const gzipped = gzipSync(text)
    const origin = await startValidatingOrigin({
      body: gzipped,
      etag: '"gz"',
      headers: { 'cache-control': 'max-age=60', 'content-encoding': 'gzip', 'content-length': String(gzipped.byteLength) },
    })
    const agent = createTestAgent()
    const first = await fetch(origin.url, { dispatcher: agent })
    expect(await first.text()).toBe(text)
    // The 304 to come names neither Content-Encoding nor the stored length.
    origin.representation = { ...origin.representation, headers: { 'cache-control': 'max-age=60' } }
    clock.advance(61_000)
    const revalidated = await fetch(origin.url, { dispatcher: agent })
    expect(origin.statuses).toEqual([200, 304])
    expect(revalidated.headers.get('content-encoding')).toBe('gzip')
    expect(revalidated.headers.get('content-length')).toBe(String(gzipped.byteLength))
    expect(await revalidated.text()).toBe(text)
  })

  it('answers a HEAD after a 304 from the renewed entry', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'full body', etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    await get(origin.url, agent)
    const head = await get(origin.url, agent, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.body).toBe('')
    expect(head.headers['content-length']).toBe('9')
    expect(statusOf(head.headers)).toBe('hit')
    expect(origin.requests).toBe(2)
  })

  it('replaces the entry with a full 200 answer, and serves the new body from then on', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'old', etag: '"old"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.representation = { body: 'new', etag: '"new"', headers: { 'cache-control': 'max-age=60' } }
    clock.advance(61_000)
    const replaced = await get(origin.url, agent)
    expect(replaced.body).toBe('new')
    expect(replaced.headers['cache-status']).toMatch(/; fwd=stale; stored/)
    const hit = await get(origin.url, agent)
    expect(hit.body).toBe('new')
    expect(statusOf(hit.headers)).toBe('hit')
    expect(origin.requests).toBe(2)
  })

  it('deletes the entry when the full answer may not be stored', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'old', etag: '"old"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.representation = { body: 'private', etag: '"new"', headers: { 'cache-control': 'no-store' } }
    clock.advance(61_000)
    expect((await get(origin.url, agent)).body).toBe('private')
    origin.representation = { body: 'later', headers: { 'cache-control': 'max-age=60' } }
    const next = await get(origin.url, agent)
    expect(next.body).toBe('later')
    expect(next.headers['cache-status']).toMatch(/fwd=uri-miss/) // nothing was left stored
  })

  it('deletes the entry when a 304 says no-store, and when a no-cache request gets a no-store answer', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'old', etag: '"old"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.representation = { ...origin.representation, notModifiedHeaders: { 'cache-control': 'no-store' } }
    clock.advance(61_000)
    const notModified = await get(origin.url, agent)
    expect(notModified.body).toBe('old')
    expect(notModified.headers['cache-status']).not.toMatch(/stored/)
    origin.representation = { body: 'stored', headers: { 'cache-control': 'max-age=60' } }
    expect((await get(origin.url, agent)).headers['cache-status']).toMatch(/fwd=uri-miss; stored/) // nothing was left stored

    origin.representation = { body: 'private', headers: { 'cache-control': 'no-store' } }
    const refetched = await get(origin.url, agent, { headers: { 'cache-control': 'no-cache' } })
    expect(refetched.body).toBe('private')
    expect(refetched.headers['cache-status']).toMatch(/fwd=request/)
    expect(refetched.headers['cache-status']).not.toMatch(/stored/)
    origin.representation = { body: 'later', headers: { 'cache-control': 'max-age=60' } }
    expect((await get(origin.url, agent)).headers['cache-status']).toMatch(/fwd=uri-miss/)
    expect(origin.statuses).toEqual([200, 304, 200, 200, 200])
  })

  it('passes a 5xx during revalidation to the caller when stale-if-error does not apply, and keeps the entry', async () => {
    const clock = useFakeDate()
    let failing = false
    const origin = await startOrigin((_request, response) => {
      if (failing) {
        response.writeHead(500, { 'content-type': 'text/plain' })
        return void response.end('origin error')
      }
      response.writeHead(200, { 'cache-control': 'max-age=60', etag: '"a"' })
      response.end('stored')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    failing = true
    clock.advance(61_000)
    const answer = await get(origin.url, agent)
    expect(answer.status).toBe(500)
    expect(answer.body).toBe('origin error')
    failing = false
    clock.advance(1_000)
    const later = await get(origin.url, agent)
    expect(origin.received[2]!.headers['if-none-match']).toBe('"a"') // the entry was kept, still with its ETag
    expect(later.body).toBe('stored')
  })

  it("revalidates through Node's global fetch, which dispatches with legacy handlers", async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'legacy', etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const previous = getGlobalDispatcher()
    setGlobalDispatcher(createTestAgent())
    onTestFinished(() => setGlobalDispatcher(previous))
    await (await globalThis.fetch(origin.url)).text()
    clock.advance(61_000)
    const revalidated = await globalThis.fetch(origin.url)
    expect(revalidated.status).toBe(200)
    expect(await revalidated.text()).toBe('legacy')
    expect(revalidated.headers.get('cache-status')).toMatch(/fwd-status=304/)
    expect(origin.statuses).toEqual([200, 304])
  })
})

describe('revalidation the request asks for', () => {
  it('revalidates a fresh entry for a request with no-cache, and answers from the entry on a 304', async () => {
    const origin = await startValidatingOrigin({ body: 'stored', etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const revalidated = await get(origin.url, agent, { headers: { 'cache-control': 'no-cache' } })
    expect(origin.received[1]!.headers['if-none-match']).toBe('"a"')
    expect(revalidated.body).toBe('stored')
    expect(revalidated.headers['cache-status']).toMatch(/; fwd=request; fwd-status=304/)
  })

  it('revalidates a stored no-cache response on every request', async () => {
    const origin = await startValidatingOrigin({ body: 'checked', etag: '"a"', headers: { 'cache-control': 'no-cache' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    for (let round = 0; round < 3; round++) {
      const response = await get(origin.url, agent)
      expect(response.body).toBe('checked')
      expect(statusOf(response.headers)).toBe('revalidated')
    }
    expect(origin.statuses).toEqual([200, 304, 304, 304])
  })
})

describe("a caller's own conditional request", () => {
  it('is answered 304 from a fresh entry whose ETag matches, without reaching the origin', async () => {
    const origin = await startValidatingOrigin({ body: 'stored', etag: '"a"', lastModified: LAST_MODIFIED, headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const answer = await get(origin.url, agent, { headers: { 'if-none-match': 'W/"x", "a"' } })
    expect(answer.status).toBe(304)
    expect(answer.body).toBe('')
    expect(answer.headers.etag).toBe('"a"')
    expect(answer.headers['cache-control']).toBe('max-age=60')
    expect(statusOf(answer.headers)).toBe('hit')
    const bySince = await get(origin.url, agent, { headers: { 'if-modified-since': LAST_MODIFIED } })
    expect(bySince.status).toBe(304)
    expect(origin.requests).toBe(1)
  })

  it('goes to the origin unchanged when the validators do not match or the entry is stale', async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'stored', etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const other = await get(origin.url, agent, { headers: { 'if-none-match': '"other"' } })
    expect(other.status).toBe(200)
    expect(origin.received[1]!.headers['if-none-match']).toBe('"other"')
    expect(other.headers['cache-status']).toMatch(/fwd=request/)

    clock.advance(61_000)
    const stale = await get(origin.url, agent, { headers: { 'if-none-match': '"a"' } })
    expect(stale.status).toBe(304) // the origin's own 304, to a caller that asked for one
    expect(origin.received[2]!.headers['if-none-match']).toBe('"a"')
  })

  it("renews the stale entry from the origin's 304 to it when the 304 names the entry's validator", async () => {
    const clock = useFakeDate()
    const origin = await startValidatingOrigin({ body: 'stored', etag: '"a"', headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    expect((await get(origin.url, agent, { headers: { 'if-none-match': '"a"' } })).status).toBe(304)
    const renewed = await get(origin.url, agent)
    expect([renewed.status, renewed.body, statusOf(renewed.headers)]).toEqual([200, 'stored', 'hit'])
    expect(origin.requests).toBe(2)
  })

  it('renews nothing from a late 304 when a newer response was stored meanwhile', async () => {
    const clock = useFakeDate()
    let releaseLate = (): void => {}
    const late = new Promise<void>((resolve) => (releaseLate = resolve))
    const origin = await startOrigin(async (request, response) => {
      if (request.headers['x-caller'] !== undefined) {
        await late // the caller's own conditional: answered 304, slowly
        return void response.writeHead(304, { etag: '"a"', 'cache-control': 'max-age=60' }).end()
      }
      const version = origin.requests === 1 ? 'a' : 'b' // the resource changed after the first answer
      response.writeHead(200, { etag: `"${version}"`, 'cache-control': 'max-age=60' }).end(`body ${version}`)
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    const callers = get(origin.url, agent, { headers: { 'if-none-match': '"a"', 'x-caller': '1' } })
    await vi.waitFor(() => expect(origin.requests).toBe(2))
    expect((await get(origin.url, agent)).body).toBe('body b') // revalidated: the newer response, stored
    releaseLate()
    expect((await callers).status).toBe(304)
    await new Promise((resolve) => setTimeout(resolve, 20))
    const after = await get(origin.url, agent)
    expect([after.body, statusOf(after.headers)]).toEqual(['body b', 'hit'])
  })

  it('renews nothing from a 304 without validators, which answers only the caller\'s own', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((request, response) => {
      if (request.headers['if-none-match'] !== undefined) return void response.writeHead(304, { 'cache-control': 'max-age=60' }).end()
      response.writeHead(200, { etag: '"a"', 'cache-control': 'max-age=60' }).end('stored')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    expect((await get(origin.url, agent, { headers: { 'if-none-match': '"b"' } })).status).toBe(304)
    expect(statusOf((await get(origin.url, agent)).headers)).toBe('revalidated') // still stale: not renewed by that 304
    expect(origin.requests).toBe(3)
  })
})
