import { Readable } from 'node:stream'
import { Agent, request, type Dispatcher } from 'undici'
import { describe, expect, it } from 'vitest'
import type { CachingAgentOptions } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { MapStore } from './helpers/map-store.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

/** A CachingAgent whose inner dispatcher counts the requests the cache sends on, as it sends them. */
function createCountingAgent(options: CachingAgentOptions) {
  let dispatched = 0
  const inner = new Agent().compose((dispatch) => (dispatchOptions: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => {
    dispatched++
    return dispatch(dispatchOptions, handler)
  })
  return { agent: createTestAgent({ ...options, dispatcher: inner }), dispatched: () => dispatched }
}

/** A store whose lookups wait until the test answers them, as a slow store's do. */
class SlowStore extends MapStore {
  readonly #waiting: Array<() => void> = []
  #onAsked = (): void => {}
  /** Resolves once a lookup waits. */
  readonly asked = new Promise<void>((resolve) => (this.#onAsked = resolve))

  override get(key: string): ReturnType<MapStore['get']> {
    this.#onAsked()
    return new Promise((resolve) => this.#waiting.push(() => resolve(super.get(key)))) as unknown as ReturnType<MapStore['get']>
  }

  /** Answers every waiting lookup with what is stored. */
  answer(): void {
    for (const resolve of this.#waiting.splice(0)) resolve()
  }
}

/** An origin that reads the whole request body and answers "<n> <body>" (n counts requests), storable. */
function startEchoOrigin(): Promise<Origin> {
  let count = 0
  return startOrigin(async (incoming, response) => {
    const number = ++count
    let body = ''
    for await (const chunk of incoming) body += chunk
    response.setHeader('cache-control', 'max-age=60')
    response.end(`${number} ${body}`)
  })
}

/** A request body that sends a first chunk once read, then stalls; `reading` resolves once it is read. */
function stalledBody(): { body: Readable; reading: Promise<void> } {
  let startedReading = (): void => {}
  const reading = new Promise<void>((resolve) => (startedReading = resolve))
  let pushed = false
  const body = new Readable({
    read() {
      if (!pushed) this.push('{"partial":')
      pushed = true
      startedReading()
    },
  })
  return { body, reading }
}

/** Lets what is queued run: microtasks, and a turn of the event loop. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

describe("a caller's abort before the cache has sent the request", () => {
  it('ends a POST whose body is still being read, with the abort reason, and sends nothing', async () => {
    const origin = await startEchoOrigin()
    const { agent, dispatched } = createCountingAgent({ methods: ['GET', 'HEAD', 'POST'] })
    const { body, reading } = stalledBody()
    const caller = new AbortController()
    const response = request(origin.url, { method: 'POST', body, dispatcher: agent, signal: caller.signal })
    await reading
    const reason = new Error('the caller gave up')
    caller.abort(reason)
    await expect(response).rejects.toBe(reason)
    await nextTurn()
    expect(dispatched()).toBe(0)
  })

  it('stops reading a POST body when the caller aborts: a stream is destroyed, as undici destroys a body it stops sending', async () => {
    const origin = await startEchoOrigin()
    const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
    const { body, reading } = stalledBody()
    const reason = new Error('the caller gave up')
    // A handler of its own, as dispatch() users have: undici's request() would destroy the body itself on error.
    const failed = new Promise<Error>((resolve) => {
      agent.dispatch(
        { origin: origin.origin, path: '/', method: 'POST', body },
        {
          onRequestStart: (controller) => void reading.then(() => controller.abort(reason)),
          onResponseError: (_controller, error) => resolve(error),
        },
      )
    })
    expect(await failed).toBe(reason)
    expect(body.destroyed).toBe(true)
  })

  it('ends a request waiting on a slow store lookup, with the abort reason, and sends nothing once the store answers', async () => {
    const origin = await startEchoOrigin()
    const store = new SlowStore()
    const { agent, dispatched } = createCountingAgent({ store, storeTimeoutMs: 60_000 })
    const caller = new AbortController()
    const response = request(origin.url, { dispatcher: agent, signal: caller.signal })
    await store.asked
    const reason = new Error('the caller gave up')
    caller.abort(reason)
    await expect(response).rejects.toBe(reason)
    store.answer()
    await nextTurn()
    expect(dispatched()).toBe(0)
  })
})

// The caller is started early while the cache reads a body or waits for a store; such requests still wait on each other.
describe('coalescing of requests held for their body or a slow store', () => {
  it('sends one request for identical concurrent POSTs', async () => {
    const origin = await startEchoOrigin()
    const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
    const post = () => get(origin.url, agent, { method: 'POST', body: '{"q":1}', headers: { 'content-type': 'application/json' } })
    const responses = await Promise.all([post(), post(), post()])
    expect(responses.map((response) => response.body)).toEqual(['1 {"q":1}', '1 {"q":1}', '1 {"q":1}'])
    expect(origin.requests).toBe(1)
  })

  it('sends one request for identical concurrent requests when the store answers late', async () => {
    const origin = await startEchoOrigin()
    const store = new (class extends MapStore {
      override get(key: string): ReturnType<MapStore['get']> {
        return new Promise((resolve) => setImmediate(() => resolve(super.get(key)))) as unknown as ReturnType<MapStore['get']>
      }
    })()
    const agent = createTestAgent({ store })
    const responses = await Promise.all([get(origin.url, agent), get(origin.url, agent)])
    expect(responses.map((response) => [response.body, statusOf(response.headers)])).toEqual([
      ['1 ', 'miss'],
      ['1 ', 'hit'],
    ])
    expect(origin.requests).toBe(1)
  })
})
