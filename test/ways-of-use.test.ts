import { Writable } from 'node:stream'
import {
  Agent,
  Client,
  MockAgent,
  Pool,
  ProxyAgent,
  RetryAgent,
  fetch,
  getGlobalDispatcher,
  pipeline,
  request,
  setGlobalDispatcher,
  stream,
  type Dispatcher,
} from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import { CachingAgent, MemoryStore, cacheInterceptor, type CacheEntry, type CacheStatus, type CacheStore } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startForwardProxy } from './helpers/forward-proxy.js'
import { startOrigin } from './helpers/origin.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

const isUndici7 = process.env.UNDICI_MAJOR === '7'
const CACHEABLE = { 'cache-control': 'max-age=60' }

/** What a user sees of one response: status, whole body, and the cache's verdict from Cache-Status. */
interface Seen {
  status: number
  body: string
  cacheStatus: CacheStatus | undefined
}

/** One way of sending a GET for `url`; `dispatcher` is left out to use the global dispatcher. */
type Send = (url: string, dispatcher?: Dispatcher) => Promise<Seen>

const withDispatcher = (dispatcher?: Dispatcher) => (dispatcher ? { dispatcher } : {})

const sendWithRequest: Send = async (url, dispatcher) => {
  const response = await request(url, withDispatcher(dispatcher))
  return { status: response.statusCode, body: await response.body.text(), cacheStatus: statusOf(response.headers) }
}

const sendWithStream: Send = async (url, dispatcher) => {
  const chunks: Buffer[] = []
  let seen = { status: 0, cacheStatus: undefined as CacheStatus | undefined }
  await stream(url, { method: 'GET', ...withDispatcher(dispatcher) }, ({ statusCode, headers }) => {
    seen = { status: statusCode, cacheStatus: statusOf(headers) }
    return new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk)
        callback()
      },
    })
  })
  return { ...seen, body: Buffer.concat(chunks).toString() }
}

const sendWithPipeline: Send = async (url, dispatcher) => {
  let seen = { status: 0, cacheStatus: undefined as CacheStatus | undefined }
  const duplex = pipeline(url, { method: 'GET', ...withDispatcher(dispatcher) }, ({ statusCode, headers, body }) => {
    seen = { status: statusCode, cacheStatus: statusOf(headers) }
    return body
  })
  duplex.end() // a GET sends no body
  const chunks: Buffer[] = []
  for await (const chunk of duplex) chunks.push(chunk as Buffer)
  return { ...seen, body: Buffer.concat(chunks).toString() }
}

const sendWithUndiciFetch: Send = async (url, dispatcher) => {
  const response = await fetch(url, withDispatcher(dispatcher))
  return { status: response.status, body: await response.text(), cacheStatus: statusOf(response.headers) }
}

// Node's own fetch comes from the undici bundled with Node; it follows the global dispatcher only.
const sendWithNodeFetch: Send = async (url) => {
  const response = await globalThis.fetch(url)
  return {
    status: response.status,
    body: await response.text(),
    cacheStatus: statusOf({ get: (name) => response.headers.get(name) }),
  }
}

/**
 * Sends the same GET twice to an origin answering "v1", "v2", … with max-age=60, and checks that the
 * first is a miss, the second a hit with the first body, and that only the first reached the origin.
 */
async function expectMissThenHit(send: (url: string) => Promise<Seen>, origin: { url: string; readonly requests: number }) {
  const miss = await send(origin.url)
  expect(miss).toEqual({ status: 200, body: 'v1', cacheStatus: 'miss' })
  expect(origin.requests).toBe(1)
  const hit = await send(origin.url)
  expect(hit).toEqual({ status: 200, body: 'v1', cacheStatus: 'hit' })
  expect(origin.requests).toBe(1)
}

/** Closes `dispatcher` when the test ends, and returns it. */
function closeAfterTest<T extends { close(): Promise<void> }>(dispatcher: T): T {
  onTestFinished(() => dispatcher.close())
  return dispatcher
}

describe('a CachingAgent set as the global dispatcher', () => {
  /** Installs a fresh CachingAgent globally; the previous dispatcher comes back when the test ends. */
  function useGlobalCachingAgent(): void {
    const previous = getGlobalDispatcher()
    setGlobalDispatcher(createTestAgent())
    onTestFinished(() => setGlobalDispatcher(previous))
  }

  it.each([
    ["undici's request()", sendWithRequest],
    ["undici's stream()", sendWithStream],
    ["undici's pipeline()", sendWithPipeline],
    ["undici's fetch()", sendWithUndiciFetch],
    ["Node's global fetch(), which dispatches with legacy handlers", sendWithNodeFetch],
  ] as const)('caches what %s sends', async (_name, send) => {
    const origin = await startVersionedOrigin(CACHEABLE)
    useGlobalCachingAgent()
    await expectMissThenHit((url) => send(url), origin)
  })
})

describe('cacheInterceptor() composed onto a Client', () => {
  function createCachingClient(origin: string): Dispatcher {
    return closeAfterTest(new Client(origin).compose(cacheInterceptor({ store: new MemoryStore() })))
  }

  it('caches request() with the client as its dispatcher', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const client = createCachingClient(origin.origin)
    await expectMissThenHit((url) => sendWithRequest(url, client), origin)
  })

  it("caches undici's fetch() with the client as its dispatcher", async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const client = createCachingClient(origin.origin)
    await expectMissThenHit((url) => sendWithUndiciFetch(url, client), origin)
  })

  it('caches client.request() given an origin and a path', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const client = createCachingClient(origin.origin)
    await expectMissThenHit(async () => {
      const response = await client.request({ origin: origin.origin, path: '/', method: 'GET' })
      return { status: response.statusCode, body: await response.body.text(), cacheStatus: statusOf(response.headers) }
    }, origin)
  })

  // undici 7's Client leaves `origin` out of the options it gives interceptors, so the cache cannot key
  // the request and steps aside; undici 8 passes the origin on.
  it.runIf(isUndici7)('passes client.request() with only a path through uncached on undici 7, answered correctly', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const client = createCachingClient(origin.origin)
    for (const expectedBody of ['v1', 'v2']) {
      const response = await client.request({ path: '/', method: 'GET' })
      expect(response.statusCode).toBe(200)
      expect(await response.body.text()).toBe(expectedBody)
      expect(response.headers['cache-status']).toMatch(/fwd=bypass/)
    }
    expect(origin.requests).toBe(2)
  })

  it.skipIf(isUndici7)('caches client.request() with only a path on undici 8', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const client = createCachingClient(origin.origin)
    await expectMissThenHit(async () => {
      const response = await client.request({ path: '/', method: 'GET' })
      return { status: response.statusCode, body: await response.body.text(), cacheStatus: statusOf(response.headers) }
    }, origin)
  })
})

describe('a CachingAgent passed per request as the dispatcher option', () => {
  it('caches request()', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const agent = createTestAgent()
    await expectMissThenHit((url) => sendWithRequest(url, agent), origin)
  })

  it("caches undici's fetch()", async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const agent = createTestAgent()
    await expectMissThenHit((url) => sendWithUndiciFetch(url, agent), origin)
  })
})

describe('closing a CachingAgent', () => {
  it('resolves once what its requests stored has reached an asynchronous store, for another agent to find', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const entries = new Map<string, CacheEntry>()
    // A store whose writes take a while to land, as a file or a network store's do.
    const slowStore: CacheStore = {
      get: async (key) => entries.get(key),
      set: (key, entry) => new Promise<void>((resolve) => setTimeout(() => resolve(void entries.set(key, entry)), 50)),
      delete: async (key) => void entries.delete(key),
      keys: async () => [...entries.keys()],
      clear: async () => entries.clear(),
    }
    const first = new CachingAgent({ store: slowStore })
    await (await request(origin.url, { dispatcher: first })).body.text()
    await first.close()
    const second = new CachingAgent({ store: slowStore })
    onTestFinished(() => second.close())
    const response = await request(origin.url, { dispatcher: second })
    await response.body.text()
    expect(statusOf(response.headers)).toBe('hit')
    expect(origin.requests).toBe(1)
  })
})

describe('a CachingAgent wrapping another dispatcher', () => {
  it('caches what it sends through a Pool', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const agent = createTestAgent({ dispatcher: new Pool(origin.origin) }) // closing the agent closes the pool
    await expectMissThenHit((url) => sendWithRequest(url, agent), origin)
  })

  it('caches what it sends through a RetryAgent', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const agent = createTestAgent({ dispatcher: new RetryAgent(new Agent()) })
    await expectMissThenHit((url) => sendWithRequest(url, agent), origin)
  })

  it('caches what it sends through a ProxyAgent, so that a hit reaches neither the proxy nor the origin', async () => {
    const origin = await startVersionedOrigin(CACHEABLE)
    const proxy = await startForwardProxy()
    // proxyTunnel: false sends absolute-form requests for http: targets (undici 7 tunnels by default).
    const agent = createTestAgent({ dispatcher: new ProxyAgent({ uri: proxy.url, proxyTunnel: false }) })
    await expectMissThenHit((url) => sendWithRequest(url, agent), origin)
    expect(proxy.requests).toBe(1)
  })

  it("caches a MockAgent's intercepted reply, so that a reply given once serves two requests", async () => {
    const mockAgent = new MockAgent()
    mockAgent.disableNetConnect()
    mockAgent
      .get('http://mocked.test')
      .intercept({ path: '/x' })
      .reply(200, 'mocked', { headers: { 'cache-control': 'max-age=60' } })
    const agent = createTestAgent({ dispatcher: mockAgent }) // closing the agent closes the MockAgent
    const miss = await sendWithRequest('http://mocked.test/x', agent)
    expect(miss).toEqual({ status: 200, body: 'mocked', cacheStatus: 'miss' })
    expect(mockAgent.pendingInterceptors()).toEqual([])
    const hit = await sendWithRequest('http://mocked.test/x', agent)
    expect(hit).toEqual({ status: 200, body: 'mocked', cacheStatus: 'hit' })
  })
})

describe('response bodies across ways of reading', () => {
  it('gives two concurrent hits on one entry each the whole body', async () => {
    // 200 KiB: replayed in several chunks, so the two replays interleave.
    const body = Array.from({ length: 60_000 }, (_, index) => index.toString(36))
      .join(' ')
      .slice(0, 200 * 1024)
    expect(body.length).toBe(200 * 1024)
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, CACHEABLE)
      response.end(body)
    })
    const agent = createTestAgent()
    expect((await sendWithRequest(origin.url, agent)).cacheStatus).toBe('miss')
    const hits = await Promise.all([sendWithRequest(origin.url, agent), sendWithRequest(origin.url, agent)])
    for (const hit of hits) {
      expect(hit.cacheStatus).toBe('hit')
      expect(hit.body.length).toBe(body.length)
      expect(hit.body === body).toBe(true) // not toBe(body): a 200 KiB diff would drown the report
    }
    expect(origin.requests).toBe(1)
  })

  it('streams a miss: the first bytes reach the caller before the origin has ended the body', async () => {
    let release = (): void => {}
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    const origin = await startOrigin(async (_request, response) => {
      response.writeHead(200, CACHEABLE)
      response.write('first chunk;')
      await released // the rest is held back until the caller has read the first chunk
      response.end('the rest')
    })
    const agent = createTestAgent()
    // Registered last, so it runs first (onTestFinished hooks run in reverse): should the test fail before
    // releasing, the origin still ends the body, and closing the agent does not wait on it for ever.
    onTestFinished(() => release())

    const response = await request(origin.url, { dispatcher: agent })
    expect(statusOf(response.headers)).toBe('miss')
    const chunks = response.body[Symbol.asyncIterator]()
    const first = await chunks.next()
    expect(String(first.value)).toBe('first chunk;')
    release()
    let rest = ''
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) rest += String(next.value)
    expect(rest).toBe('the rest')

    const hit = await sendWithRequest(origin.url, agent)
    expect(hit).toEqual({ status: 200, body: 'first chunk;the rest', cacheStatus: 'hit' })
    expect(origin.requests).toBe(1)
  })
})
