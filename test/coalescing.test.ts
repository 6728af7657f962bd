import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { request, type Dispatcher } from 'undici'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { MemoryStore, type CacheEntry } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { MapStore } from './helpers/map-store.js'
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

/**
 * An origin that answers request n "body #n" with the headers `plan(n)` gives, at once or, `held`, once
 * `release()` is called.
 */
async function startPlannedOrigin(plan: (number: number) => { headers: OutgoingHttpHeaders; held: boolean }): Promise<Origin & { release(): void }> {
  let release = (): void => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  onTestFinished(() => release()) // a failing test must not leave the origin holding connections open
  let count = 0
  const origin = await startOrigin(async (_incoming, response) => {
    const number = ++count
    const { headers, held } = plan(number)
    if (held) await released
    response.writeHead(200, headers)
    response.end(`body #${number}`)
  })
  return Object.assign(origin, { release })
}

/**
 * An origin whose first response sends its head, then only what the test `write()`s, and never ends;
 * `closed` tells whether its connection was closed. Later requests get "later" at once.
 */
async function startUnendingOrigin(headers: OutgoingHttpHeaders) {
  let first: ServerResponse | undefined
  let closed = false
  const origin = await startOrigin((_incoming, response) => {
    response.writeHead(200, headers)
    if (first !== undefined) return void response.end('later')
    first = response
    response.on('close', () => (closed = true))
    response.flushHeaders()
  })
  const unending = {
    write: (chunk: string) => first!.write(chunk),
    get closed() {
      return closed
    },
  }
  return { origin, unending }
}

/** A store whose writes are held until `release()`, as a slow store's are. */
class HeldStore extends MapStore {
  readonly #released: Promise<void>
  release = (): void => {}

  constructor() {
    super()
    this.#released = new Promise((resolve) => (this.release = resolve))
    onTestFinished(() => this.release())
  }

  override set(key: string, entry: CacheEntry): Promise<void> {
    return this.#released.then(() => super.set(key, entry))
  }
}

/**
 * Dispatches a GET with a bare handler that records what it is handed; `onResponseStart` runs as the response
 * starts (a pause there stops the body before any of it arrives). `controller()` is the handler's controller.
 */
function dispatchRecorded(
  url: string,
  agent: Dispatcher,
  hooks: { onResponseStart?: (controller: Dispatcher.DispatchController) => void } = {},
) {
  const { origin, pathname } = new URL(url)
  const events: string[] = []
  let body = ''
  let controller: Dispatcher.DispatchController | undefined
  let markStarted = (): void => {}
  const started = new Promise<void>((resolve) => (markStarted = resolve))
  const finished = new Promise<void>((resolve) => {
    agent.dispatch(
      { origin, path: pathname, method: 'GET', headers: {} },
      {
        onRequestStart: (given) => void (controller = given),
        onResponseStart: (given) => {
          events.push('start')
          hooks.onResponseStart?.(given)
          markStarted()
        },
        onResponseData: (_given, chunk) => void (body += chunk.toString()),
        onResponseEnd: () => {
          events.push('end')
          resolve()
        },
        onResponseError: (_given, error) => {
          events.push(`error: ${error.message}`)
          resolve()
        },
      },
    )
  })
  return { events, body: () => body, controller: () => controller!, started, finished }
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

  it('sends concurrent misses for a URL whose last response could not be stored each to the origin at once, none given another\'s body', async () => {
    // The first request is answered at once with no-store; later ones are held until all five reached the origin.
    const origin = await startPlannedOrigin((number) => ({ headers: { 'cache-control': 'no-store' }, held: number > 1 }))
    const agent = createTestAgent()
    expect((await get(origin.url, agent)).body).toBe('body #1')
    const pending = sendAtOnce(origin.url, agent, 5)
    await vi.waitFor(() => expect(origin.requests).toBe(6)) // none waits on another: all are at the origin together
    origin.release()
    const responses = await Promise.all(pending)
    const bodies = await Promise.all(responses.map((response) => response.body.text()))
    expect(bodies.toSorted()).toEqual(['body #2', 'body #3', 'body #4', 'body #5', 'body #6'])
    expect(responses.every((response) => statusOf(response.headers) === 'miss')).toBe(true)
    expect(agent.cache.stats.misses).toBe(6)
  })

  it('stores the response for a URL that turned cacheable after a no-store answer, and coalesces its misses again', async () => {
    const origin = await startPlannedOrigin((number) => ({ headers: { 'cache-control': number === 1 ? 'no-store' : 'max-age=60' }, held: number > 2 }))
    const agent = createTestAgent()
    expect((await get(origin.url, agent)).body).toBe('body #1')
    expect((await get(origin.url, agent)).body).toBe('body #2') // cacheable now: stored
    const hit = await request(origin.url, { dispatcher: agent })
    expect([await hit.body.text(), statusOf(hit.headers)]).toEqual(['body #2', 'hit'])
    await agent.cache.delete(origin.url)
    const pending = sendAtOnce(origin.url, agent, 5)
    await vi.waitFor(() => expect(origin.requests).toBe(3))
    origin.release()
    const bodies = await Promise.all((await Promise.all(pending)).map((response) => response.body.text()))
    expect(bodies).toEqual(Array.from({ length: 5 }, () => 'body #3'))
    expect(origin.requests).toBe(3)
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

  it('coalesces the misses of each variant apart once the Vary record is known', async () => {
    const origin = await startPlannedOrigin((number) => ({ headers: { 'cache-control': 'max-age=60', vary: 'accept-language' }, held: number > 1 }))
    const agent = createTestAgent()
    const ask = (language: string) => request(origin.url, { dispatcher: agent, headers: { 'accept-language': language } })
    expect(await (await ask('en')).body.text()).toBe('body #1') // stored: its Vary record names the selecting header
    const pending = ['fr', 'de', 'fr', 'de', 'fr', 'de'].map(ask)
    await vi.waitFor(() => expect(origin.requests).toBe(3)) // one for each new variant
    origin.release()
    const bodies = await Promise.all((await Promise.all(pending)).map((response) => response.body.text()))
    const [french, german] = [bodies.filter((_, index) => index % 2 === 0), bodies.filter((_, index) => index % 2 === 1)]
    expect(new Set(french).size).toBe(1)
    expect(new Set(german).size).toBe(1)
    expect(french[0]).not.toBe(german[0])
    expect(origin.requests).toBe(3)
  })

  it('coalesces concurrent HEAD misses into one request', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const pending = Array.from({ length: 3 }, () => request(origin.url, { dispatcher: agent, method: 'HEAD' }))
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    origin.release()
    const responses = await Promise.all(pending)
    expect(responses.map((response) => response.statusCode)).toEqual([200, 200, 200])
    expect(origin.requests).toBe(1)
  })

  it('never makes a GET wait on a HEAD whose identity its custom key spells', async () => {
    // The HEAD of /a is keyed "x"; the GET of /b is keyed with what a HEAD of "x" would be listed under, were
    // the two listed in one table.
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent({ key: (request) => (new URL(request.url).pathname === '/a' ? 'x' : ' HEAD x') })
    const head = request(`${origin.url}a`, { dispatcher: agent, method: 'HEAD' })
    const get = request(`${origin.url}b`, { dispatcher: agent })
    await vi.waitFor(() => expect(origin.requests).toBe(2)) // both at the origin together: neither waits
    origin.release()
    expect((await head).statusCode).toBe(200)
    expect(await (await get).body.text()).toMatch(/^body #[12]$/)
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

  it('serves a request that joins after the leader has stopped reading, while the leader still reads nothing', async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' })
      response.end('body')
    })
    const agent = createTestAgent()
    const leader = dispatchRecorded(origin.url, agent, { onResponseStart: (controller) => controller.pause() })
    await leader.started // it reads nothing from here on, and nobody waited when it stopped
    const waiter = await get(origin.url, agent)
    expect(waiter.body).toBe('body')
    expect(statusOf(waiter.headers)).toBe('hit')
    expect(leader.events).toEqual(['start'])
    leader.controller().resume()
    await leader.finished
    expect(leader.body()).toBe('body')
    expect(leader.events).toEqual(['start', 'end'])
    expect(origin.requests).toBe(1)
  })

  it('gives a leader that aborts before reading its response an error, though its response arrived for a waiter', async () => {
    const origin = await startOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' })
      response.end('body')
    })
    const agent = createTestAgent()
    const leader = dispatchRecorded(origin.url, agent, { onResponseStart: (controller) => controller.pause() })
    await leader.started
    expect((await get(origin.url, agent)).body).toBe('body') // the waiter, from the leader's response
    leader.controller().abort(new Error('gave up'))
    await leader.finished
    expect(leader.events).toEqual(['start', 'error: gave up'])
  })

  it('hands a paused leader that aborts, nobody waiting, its error', async () => {
    const { origin, unending } = await startUnendingOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const leader = dispatchRecorded(origin.url, agent, { onResponseStart: (controller) => controller.pause() })
    await leader.started
    unending.write('part of the body') // queued for the paused leader
    await new Promise((resolve) => setTimeout(resolve, 20))
    leader.controller().abort(new Error('gave up'))
    await leader.finished
    expect(leader.events).toEqual(['start', 'error: gave up'])
    await vi.waitFor(() => expect(unending.closed).toBe(true))
  })

  it('ends the request to the origin once the leader and every waiter have aborted, and stores nothing', async () => {
    const { origin, unending } = await startUnendingOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const [leaderAbort, waiterAbort] = [new AbortController(), new AbortController()]
    const leader = request(origin.url, { dispatcher: agent, signal: leaderAbort.signal })
    const waiter = request(origin.url, { dispatcher: agent, signal: waiterAbort.signal })
    const leaderResponse = await leader
    leaderAbort.abort()
    await expect(leaderResponse.body.text()).rejects.toThrow()
    expect(unending.closed).toBe(false) // the response goes on for the waiter
    waiterAbort.abort()
    await expect(waiter).rejects.toThrow()
    await vi.waitFor(() => expect(unending.closed).toBe(true))
    expect((await get(origin.url, agent)).body).toBe('later')
    expect(origin.requests).toBe(2)
  })

  it('ends the request to the origin of a leader that aborted once its response proves too large to store', async () => {
    const { origin, unending } = await startUnendingOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent({ store: new MemoryStore({ maxEntrySize: 4 * 1024 }) })
    const leaderAbort = new AbortController()
    const leader = request(origin.url, { dispatcher: agent, signal: leaderAbort.signal })
    const waiter = request(origin.url, { dispatcher: agent })
    const leaderResponse = await leader
    leaderAbort.abort()
    await expect(leaderResponse.body.text()).rejects.toThrow()
    unending.write('x'.repeat(8 * 1024)) // too large: the waiter goes to the origin on its own
    expect(await (await waiter).body.text()).toBe('later')
    await vi.waitFor(() => expect(unending.closed).toBe(true))
    expect(origin.requests).toBe(2)
  })

  it('does not hand a leader an error after its end when it aborts while waiters wait on a slow store write', async () => {
    const origin = await startHeldOrigin({ 'cache-control': 'max-age=60' })
    const store = new HeldStore()
    const agent = createTestAgent({ store })
    const leader = dispatchRecorded(origin.url, agent)
    await vi.waitFor(() => expect(origin.requests).toBe(1))
    const waiter = request(origin.url, { dispatcher: agent })
    origin.release()
    await leader.finished // its response is whole, and still being stored
    leader.controller().abort(new Error('aborted after the end'))
    store.release()
    expect(await (await waiter).body.text()).toBe('body #1')
    expect(leader.events).toEqual(['start', 'end'])
    expect(origin.requests).toBe(1)
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
