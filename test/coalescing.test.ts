import type { OutgoingHttpHeaders } from 'node:http'
import { request, type Dispatcher } from 'undici'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { MemoryStore } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

/**
 * An origin that holds every answer until `release()`, then answers "<body> #<n>" (n counts requests)
 * with `headers`, so that concurrent requests are truly concurrent and each answer is told apart.
 */
async function startHeldOrigin(
  headers: OutgoingHttpHeaders,
  body = 'body',
): Promise<Origin & { release(): void; onRequest?: (count: number) => 'reset' | undefined }> {
  let release = (): void => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  let count = 0
  const origin = await startOrigin(async (incoming, response) => {
    const number = ++count
    await released
    if (held.onRequest?.(number) === 'reset') return void incoming.socket.destroy()
    response.writeHead(200, headers)
    response.end(`${body} #${number}`)
  })
  const held: Origin & { release(): void; onRequest?: (count: number) => 'reset' | undefined } = Object.assign(origin, { release })
  onTestFinished(() => release()) // a failing test must not leave the origin holding connections open
  return held
}

/** Starts `count` identical GETs at once; each resolves to the response with its body unread. */
function sendAtOnce(url: string, agent: Dispatcher, count: number, options: { signal?: AbortSignal } = {}) {
  return Array.from({ length: count }, () => request(url, { dispatcher: agent, ...options }))
}

describe('coalescing', () => {
  it('sends one request for 100 concurrent identical misses and gives each caller the whole body', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const pending = sendAtOnce(origin.url, agent, 100)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    const responses = await Promise.all(pending)
    const bodies = await Promise.all(responses.map((response) => response.body.text()))
    expect(new Set(bodies)).toEqual(new Set(['body #1']))
    expect(bodies).toHaveLength(100)
    expect(origin.requests).toBe(1)
    expect(statusOf(responses[0]!.headers)).toBe('miss') // the leader
    expect(responses.slice(1).every((response) => statusOf(response.headers) === 'hit')).toBe(true)
  })

  it('lets 10 of 100 abort while the other 90 complete, the leader among the aborted', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const aborters = Array.from({ length: 10 }, () => new AbortController())
    const aborted = aborters.map((controller) => request(origin.url, { dispatcher: agent, signal: controller.signal }))
    const completing = sendAtOnce(origin.url, agent, 90)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    for (const controller of aborters) controller.abort()
    for (const result of await Promise.allSettled(aborted)) expect(result.status).toBe('rejected')
    origin.release()
    const bodies = await Promise.all((await Promise.all(completing)).map((response) => response.body.text()))
    expect(bodies).toEqual(Array.from({ length: 90 }, () => 'body #1'))
    expect(origin.requests).toBe(1)
  })

  it('sends each waiter on its own when the response may not be stored', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'no-store' })
    const agent = createTestAgent()
    const pending = sendAtOnce(origin.url, agent, 5)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    const bodies = await Promise.all((await Promise.all(pending)).map((response) => response.body.text()))
    expect(bodies.toSorted()).toEqual(['body #1', 'body #2', 'body #3', 'body #4', 'body #5'])
  })

  it('sends a waiter on its own when the stored response varies on a header it sends differently', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60', vary: 'accept-language' })
    const agent = createTestAgent()
    const english = request(origin.url, { dispatcher: agent, headers: { 'accept-language': 'en' } })
    const french = request(origin.url, { dispatcher: agent, headers: { 'accept-language': 'fr' } })
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    expect(await (await english).body.text()).toBe('body #1')
    expect(await (await french).body.text()).toBe('body #2')
  })

  it('sends each waiter on its own when the response is larger than maxEntrySize, and never holds more', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' }, 'x'.repeat(8 * 1024))
    const agent = createTestAgent({ store: new MemoryStore({ maxSize: 64 * 1024, maxEntrySize: 4 * 1024 }) })
    const pending = sendAtOnce(origin.url, agent, 3)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    const bodies = await Promise.all((await Promise.all(pending)).map((response) => response.body.text()))
    expect(bodies.map((body) => body.slice(-3)).toSorted()).toEqual([' #1', ' #2', ' #3'])
    expect(bodies.every((body) => body.length === 8 * 1024 + 3)).toBe(true)
  })

  it('sends the waiters on their own when the leader fails, and they succeed', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' })
    origin.onRequest = (count) => (count === 1 ? 'reset' : undefined)
    const agent = createTestAgent()
    const [leader, ...waiters] = sendAtOnce(origin.url, agent, 4)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    await expect(leader).rejects.toThrow()
    const bodies = await Promise.all((await Promise.all(waiters)).map((response) => response.body.text()))
    expect(bodies.every((body) => /^body #\d$/.test(body))).toBe(true)
  })

  it('does not let a leader that reads nothing hold up the waiters', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' }, 'y'.repeat(1024 * 1024))
    const agent = createTestAgent()
    const [leader, ...waiters] = sendAtOnce(origin.url, agent, 3)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    const leaderResponse = await leader! // its body stays unread while the waiters finish
    const bodies = await Promise.all((await Promise.all(waiters)).map((response) => response.body.text()))
    expect(bodies.map((body) => body.length)).toEqual([1024 * 1024 + 3, 1024 * 1024 + 3])
    expect((await leaderResponse.body.text()).length).toBe(1024 * 1024 + 3)
    expect(origin.requests).toBe(1)
  })

  it('does not let a waiter that reads nothing hold up the others', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' }, 'z'.repeat(1024 * 1024))
    const agent = createTestAgent()
    const [leader, slow, other] = sendAtOnce(origin.url, agent, 3)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    const slowResponse = await slow!
    expect((await (await leader!).body.text()).length).toBe(1024 * 1024 + 3)
    expect((await (await other!).body.text()).length).toBe(1024 * 1024 + 3)
    expect((await slowResponse.body.text()).length).toBe(1024 * 1024 + 3)
  })

  it('sends one conditional request for many concurrent requests for one stale entry', async () => {
    const clock = useFakeDate()
    let validations = 0
    const origin = await startOrigin((incoming, response) => {
      if (incoming.headers['if-none-match'] === '"a"') {
        validations++
        response.writeHead(304, { etag: '"a"', 'cache-control': 'max-age=60' })
        return void response.end()
      }
      response.writeHead(200, { etag: '"a"', 'cache-control': 'max-age=60' })
      response.end('stored')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    clock.advance(61_000)
    const responses = await Promise.all(sendAtOnce(origin.url, agent, 20))
    const bodies = await Promise.all(responses.map((response) => response.body.text()))
    expect(bodies).toEqual(Array.from({ length: 20 }, () => 'stored'))
    expect(validations).toBe(1)
    expect(origin.requests).toBe(2)
  })

  it('sends every request when coalesce is false', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent({ coalesce: false })
    const pending = sendAtOnce(origin.url, agent, 3)
    await vi.waitFor(() => expect(origin.requests).toBe(3))
    origin.release()
    await Promise.all((await Promise.all(pending)).map((response) => response.body.text()))
  })
})
