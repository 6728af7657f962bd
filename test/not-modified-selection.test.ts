// Issue #16 part 5: a 304 validates only the stored response its validator names (RFC 9111 §4.3.4).
import type { OutgoingHttpHeaders } from 'node:http'
import { fetch, getGlobalDispatcher, request, setGlobalDispatcher } from 'undici'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

const MONDAY = 'Mon, 05 Jan 2026 00:00:00 GMT'
const TUESDAY = 'Tue, 06 Jan 2026 00:00:00 GMT'

interface Representation {
  body: string
  headers: OutgoingHttpHeaders
}

/**
 * An origin that answers every conditional request 304 with `notModified`, whatever validators it names
 * (as an origin that has moved on and names its current representation does), and any other request 200
 * with `current`. Both may be replaced between requests.
 */
async function startMovedOrigin(first: Representation): Promise<Origin & { current: Representation; notModified: OutgoingHttpHeaders }> {
  const origin = await startOrigin((incoming, response) => {
    const conditional = incoming.headers['if-none-match'] !== undefined || incoming.headers['if-modified-since'] !== undefined
    if (conditional) return void response.writeHead(304, moved.notModified).end()
    response.writeHead(200, moved.current.headers).end(moved.current.body)
  })
  const moved = Object.assign(origin, { current: first, notModified: {} as OutgoingHttpHeaders })
  return moved
}

/** Whether the origin's `index`th request carried validators. */
function isConditional(origin: Origin, index: number): boolean {
  const { headers } = origin.received[index]!
  return headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined
}

const representationA = (validators: OutgoingHttpHeaders): Representation => ({
  body: 'representation-A',
  headers: { 'cache-control': 'no-cache', ...validators },
})
const representationB = (validators: OutgoingHttpHeaders): Representation => ({
  body: 'representation-B',
  headers: { 'cache-control': 'no-cache', ...validators },
})

describe('a 304 whose validator names another response than the stored one', () => {
  it.each([
    ['a strong ETag', { etag: '"A"' }, { etag: '"B"' }],
    ['a weak ETag', { etag: 'W/"A"' }, { etag: 'W/"B"' }],
    ['a strong ETag, against a stored weak one of the same opaque tag', { etag: 'W/"A"' }, { etag: '"A"' }],
    ['another Last-Modified (the entry has no ETag)', { 'last-modified': MONDAY }, { 'last-modified': TUESDAY }],
  ])('validates nothing: %s sends the request again without validators, and the caller gets the origin\'s answer', async (_case, stored, current) => {
    const origin = await startMovedOrigin(representationA(stored))
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.current = representationB(current)
    origin.notModified = current

    const answered = await get(origin.url, agent)
    expect(answered.status).toBe(200)
    expect(answered.body).toBe('representation-B')
    expect(answered.headers['cache-status']).not.toMatch(/fwd-status=304/)
    expect(answered.headers['cache-status']).toMatch(/stored/)
    expect(origin.requests).toBe(3)
    expect(isConditional(origin, 1)).toBe(true)
    expect(isConditional(origin, 2)).toBe(false) // sent again as the caller made it
    expect(agent.cache.stats.revalidated).toBe(0)
    // What the origin answered took the old entry's place.
    const entry = await agent.cache.get(origin.url)
    expect(Buffer.from(entry!.body).toString()).toBe('representation-B')
  })

  it.each([
    ['the same strong ETag', { etag: '"A"' }, { etag: '"A"' }],
    ['a weak ETag of the same opaque tag', { etag: '"A"' }, { etag: 'W/"A"' }],
    ['the same Last-Modified', { 'last-modified': MONDAY }, { 'last-modified': MONDAY }],
    ['no validator at all', { etag: '"A"' }, {}],
  ])('still validates the entry when the 304 carries %s', async (_case, stored, notModified) => {
    const origin = await startMovedOrigin(representationA(stored))
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.notModified = notModified

    const answered = await get(origin.url, agent)
    expect(answered.body).toBe('representation-A')
    expect(statusOf(answered.headers)).toBe('revalidated')
    expect(origin.requests).toBe(2)
    expect(agent.cache.stats.revalidated).toBe(1)
  })

  it("answers fetch() with the origin's answer to the request sent again", async () => {
    const origin = await startMovedOrigin(representationA({ etag: '"A"' }))
    const agent = createTestAgent()
    await (await fetch(origin.url, { dispatcher: agent })).text()
    origin.current = representationB({ etag: '"B"' })
    origin.notModified = { etag: '"B"' }

    const answered = await fetch(origin.url, { dispatcher: agent })
    expect(answered.status).toBe(200)
    expect(answered.headers.get('etag')).toBe('"B"')
    expect(await answered.text()).toBe('representation-B')
    expect(origin.requests).toBe(3)
    expect(isConditional(origin, 2)).toBe(false)
    expect(agent.cache.stats.revalidated).toBe(0)

    // The new entry is revalidated with its own validator from then on, and a matching 304 serves it.
    const next = await fetch(origin.url, { dispatcher: agent })
    expect(await next.text()).toBe('representation-B')
    expect(origin.received[3]!.headers['if-none-match']).toBe('"B"')
    expect(agent.cache.stats.revalidated).toBe(1)
  })

  it("answers Node's global fetch, which dispatches with legacy handlers, the same way", async () => {
    const origin = await startMovedOrigin(representationA({ etag: '"A"' }))
    const previous = getGlobalDispatcher()
    const agent = createTestAgent()
    setGlobalDispatcher(agent)
    onTestFinished(() => setGlobalDispatcher(previous))
    await (await globalThis.fetch(origin.url)).text()
    origin.current = representationB({ etag: '"B"' })
    origin.notModified = { etag: '"B"' }

    const answered = await globalThis.fetch(origin.url)
    expect([answered.status, await answered.text()]).toEqual([200, 'representation-B'])
    expect(origin.requests).toBe(3)
    expect(agent.cache.stats.revalidated).toBe(0)
  })

  it('gives every coalesced request the answer to the one request sent again', async () => {
    const clock = useFakeDate()
    const origin = await startMovedOrigin({ body: 'representation-A', headers: { etag: '"A"', 'cache-control': 'max-age=60' } })
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.current = { body: 'representation-B', headers: { etag: '"B"', 'cache-control': 'max-age=60' } }
    origin.notModified = { etag: '"B"', 'cache-control': 'max-age=60' }
    clock.advance(61_000)

    const responses = await Promise.all(Array.from({ length: 10 }, () => request(origin.url, { dispatcher: agent })))
    const bodies = await Promise.all(responses.map((response) => response.body.text()))
    expect(bodies).toEqual(Array.from({ length: 10 }, () => 'representation-B'))
    expect(origin.requests).toBe(3) // stored, the conditional one, the one sent again; the waiters were served what it stored
    expect(agent.cache.stats.revalidated).toBe(0)
  })

  it('does not renew a stale entry in the background (stale-while-revalidate): the new response is fetched and stored', async () => {
    const clock = useFakeDate()
    const headers = (etag: string): OutgoingHttpHeaders => ({ etag, 'cache-control': 'max-age=60, stale-while-revalidate=30' })
    const origin = await startMovedOrigin({ body: 'representation-A', headers: headers('"A"') })
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.current = { body: 'representation-B', headers: headers('"B"') }
    origin.notModified = headers('"B"')
    clock.advance(70_000)

    const served = await get(origin.url, agent)
    expect([served.body, statusOf(served.headers)]).toEqual(['representation-A', 'stale'])
    await vi.waitFor(async () => {
      const hit = await get(origin.url, agent, { headers: { 'cache-control': 'only-if-cached' } })
      expect([hit.body, statusOf(hit.headers)]).toEqual(['representation-B', 'hit'])
    })
    expect(origin.requests).toBe(3)
    expect(isConditional(origin, 2)).toBe(false)
    expect(agent.cache.stats.revalidated).toBe(0)
  })

  it('ends the request sent again when the caller aborts while it waits for the answer', async () => {
    let closed = false
    const origin = await startOrigin((incoming, response) => {
      if (incoming.headers['if-none-match'] !== undefined) return void response.writeHead(304, { etag: '"B"' }).end()
      if (origin.requests === 1) return void response.writeHead(200, { etag: '"A"', 'cache-control': 'no-cache' }).end('representation-A')
      response.on('close', () => (closed = true)) // the request sent again: never answered
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const abort = new AbortController()
    const answer = request(origin.url, { dispatcher: agent, signal: abort.signal })
    await vi.waitFor(() => expect(origin.requests).toBe(3))
    abort.abort()
    await expect(answer).rejects.toThrow(/abort/i)
    await vi.waitFor(() => expect(closed).toBe(true))
  })
})

/**
 * Stores "representation-A" (ETag "A", fresh 1 s, stale-if-error 600 s); then answers the cache's conditional
 * request 304 naming "B", and the request sent again without validators with `unconditional`.
 */
async function startFailingAfterNotModified(unconditional: 503 | 'reset'): Promise<Origin> {
  const origin = await startOrigin((incoming, response) => {
    if (origin.requests === 1) {
      return void response.writeHead(200, { etag: '"A"', 'cache-control': 'max-age=1, stale-if-error=600' }).end('representation-A')
    }
    if (incoming.headers['if-none-match'] !== undefined) return void response.writeHead(304, { etag: '"B"' }).end()
    if (unconditional === 503) return void response.writeHead(503).end('down')
    response.socket?.destroy() // the origin cannot be reached by now
  })
  return origin
}

// Review of issue #16 part 5: the request sent again is a revalidation's too, and stale-if-error holds for it.
describe('the request sent again without validators', () => {
  it('lets the stale entry stand in when the origin answers it 503 (stale-if-error)', async () => {
    const clock = useFakeDate()
    const origin = await startFailingAfterNotModified(503)
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(2_000)
    const answered = await get(origin.url, agent)
    expect(origin.requests).toBe(3)
    expect([answered.status, answered.body]).toEqual([200, 'representation-A'])
    expect(answered.headers['cache-status']).toMatch(/detail=stale-if-error/)
  })

  it('lets the stale entry stand in when the origin cannot be reached for it (fetch())', async () => {
    const clock = useFakeDate()
    const origin = await startFailingAfterNotModified('reset')
    const agent = createTestAgent()
    await (await fetch(origin.url, { dispatcher: agent })).text()
    clock.advance(2_000)
    const answered = await fetch(origin.url, { dispatcher: agent })
    expect([answered.status, await answered.text()]).toEqual([200, 'representation-A'])
    expect(origin.requests).toBe(3)
  })

  it('lets the stale entry stand in for every coalesced request when the origin answers it 503', async () => {
    const clock = useFakeDate()
    const origin = await startFailingAfterNotModified(503)
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(2_000)
    const answers = await Promise.all(Array.from({ length: 5 }, () => get(origin.url, agent)))
    expect(answers.map((answer) => [answer.status, answer.body])).toEqual(Array.from({ length: 5 }, () => [200, 'representation-A']))
  })

  it('is a HEAD when the revalidation was one, and its 200 answers the caller', async () => {
    const origin = await startOrigin((incoming, response) => {
      if (incoming.headers['if-none-match'] !== undefined) return void response.writeHead(304, { etag: '"B"' }).end()
      const etag = origin.requests === 1 ? '"A"' : '"B"'
      response.writeHead(200, { etag, 'cache-control': 'no-cache', 'content-length': 1 }).end(incoming.method === 'HEAD' ? undefined : 'x')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const head = await get(origin.url, agent, { method: 'HEAD' })
    expect([head.status, head.headers.etag, head.body]).toEqual([200, '"B"', ''])
    expect(origin.received.map((received) => received.method)).toEqual(['GET', 'HEAD', 'HEAD'])
  })
})

// Review of issue #16 part 5: a stored POST is asked for again without validators (RFC 9110 §13.1.2).
describe('a revalidation without validators answered 304 with another ETag', () => {
  it('is not sent again (a POST reaches the origin once, as without a cache): the 304 passes through', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((incoming, response) => {
      incoming.resume()
      if (origin.requests === 2) return void response.writeHead(304, { etag: '"B"' }).end() // a misbehaving origin
      response.writeHead(200, { etag: '"A"', 'cache-control': 'max-age=1' }).end(`post ${origin.requests}`)
    })
    const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
    await get(origin.url, agent, { method: 'POST', body: 'order=1' })
    clock.advance(2_000)
    const answered = await fetch(origin.url, { dispatcher: agent, method: 'POST', body: 'order=1' })
    await answered.text()
    expect(answered.status).toBe(304) // what the origin answered, as the caller would get it without a cache
    expect(origin.received.map((received) => received.method)).toEqual(['POST', 'POST'])
    expect(isConditional(origin, 1)).toBe(false)
    expect(agent.cache.stats.revalidated).toBe(0)
  })
})

describe("a caller's own conditional request answered 304 with another ETag", () => {
  it('gets that 304, as it asked, and the entry is not validated by it', async () => {
    const origin = await startMovedOrigin(representationA({ etag: '"A"' }))
    const agent = createTestAgent()
    await get(origin.url, agent)
    origin.current = representationB({ etag: '"B"' })
    origin.notModified = { etag: '"B"' }

    const own = await get(origin.url, agent, { headers: { 'if-none-match': '"A"' } })
    expect(own.status).toBe(304) // the origin's own answer to the caller's own question
    expect(origin.requests).toBe(2)

    const next = await get(origin.url, agent)
    expect(next.body).toBe('representation-B')
    expect(agent.cache.stats.revalidated).toBe(0)
  })
})
