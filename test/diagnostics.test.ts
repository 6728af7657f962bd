import { AsyncLocalStorage } from 'node:async_hooks'
import { spawnSync } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import diagnosticsChannel from 'node:diagnostics_channel'
import { fileURLToPath } from 'node:url'
import { Agent, upgrade, type Dispatcher } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import { entrySize, type CacheEntry, type CacheStore, type ResponseEntry } from '../lib/index.js'
import type { ErrorMessage, RequestTrace, ResponseMessage, StoreMessage } from '../lib/diagnostics.js'
import { CachingAgent } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { MapStore } from './helpers/map-store.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

/** Every message published on `name` while the test runs. */
function listen<T>(name: string): T[] {
  const messages: T[] = []
  const subscriber = (message: unknown): void => void messages.push(message as T)
  diagnosticsChannel.subscribe(name, subscriber)
  onTestFinished(() => void diagnosticsChannel.unsubscribe(name, subscriber))
  return messages
}

/** An origin answering every path with a body naming it, fresh for a minute, with an ETag it answers 304 to. */
function startCacheableOrigin(): Promise<Origin> {
  return startOrigin((request, response) => {
    const fields = { 'cache-control': 'max-age=60', etag: '"v1"', date: new Date().toUTCString() }
    if (request.headers['if-none-match'] === '"v1"') return void response.writeHead(304, fields).end()
    response.writeHead(200, fields).end(`body of ${request.url}`)
  })
}

describe('undici-http-cache:response', () => {
  it('tells each response handed to a caller: what the cache did, its Cache-Status, code and key', async () => {
    const origin = await startCacheableOrigin()
    const messages = listen<ResponseMessage>('undici-http-cache:response')
    const agent = createTestAgent()
    const miss = await get(`${origin.url}page?b=2&a=1`, agent)
    const hit = await get(`${origin.url}page?a=1&b=2`, agent)
    // Node's own fetch, whose handlers are of the legacy shape on Node 22, is told about as well.
    const fetched = await fetch(`${origin.url}page?a=1&b=2`, { dispatcher: agent } as unknown as RequestInit)
    await fetched.text()
    expect(messages.map((message) => [message.status, message.statusCode, message.stored])).toEqual([
      ['miss', 200, true],
      ['hit', 200, false],
      ['hit', 200, false],
    ])
    expect(messages.map((message) => message.cacheStatus)).toEqual([miss.headers['cache-status'], hit.headers['cache-status'], fetched.headers.get('cache-status')])
    expect(messages[0]!.key).toBeDefined()
    expect(new Set(messages.map((message) => message.key))).toEqual(new Set([messages[0]!.key]))
    expect(messages[1]!.request).toEqual({ method: 'GET', origin: origin.url.replace(/\/$/, ''), path: '/page?a=1&b=2', headers: {} })
  })

  it('tells a revalidation, a response not stored, a bypass and a 504 for only-if-cached', async () => {
    const clock = useFakeDate()
    const origin = await startCacheableOrigin()
    const messages = listen<ResponseMessage>('undici-http-cache:response')
    const agent = createTestAgent({ urlsExpireAfter: [['*/bypassed', 'no-store']], cacheStatus: false })
    await get(`${origin.url}stale`, agent)
    clock.advance(120_000)
    await get(`${origin.url}stale`, agent)
    await get(`${origin.url}nothing`, agent, { headers: { 'cache-control': 'only-if-cached' } })
    await get(`${origin.url}bypassed`, agent)
    await get(`${origin.url}posted`, agent, { method: 'POST', body: 'x' })
    expect(messages.map((message) => [message.status, message.statusCode, message.request.method, message.request.path])).toEqual([
      ['miss', 200, 'GET', '/stale'],
      ['revalidated', 200, 'GET', '/stale'],
      ['miss', 504, 'GET', '/nothing'],
      ['bypass', 200, 'GET', '/bypassed'],
      ['miss', 200, 'POST', '/posted'],
    ])
    // cacheStatus: false writes no field, and the messages say so, the status still told.
    expect(messages.every((message) => message.cacheStatus === undefined)).toBe(true)
  })
})

describe('undici-http-cache:store', () => {
  it('tells each response written to the store, with its key, URL and size', async () => {
    const origin = await startCacheableOrigin()
    const messages = listen<StoreMessage>('undici-http-cache:store')
    const store = new MapStore()
    const agent = createTestAgent({ store })
    await get(`${origin.url}stored`, agent)
    const [key, entry] = [...store.entries].find(([, value]) => (value as CacheEntry).kind === 'response') as [string, ResponseEntry]
    expect(messages).toEqual([
      { request: { method: 'GET', origin: origin.url.replace(/\/$/, ''), path: '/stored', headers: {} }, key, url: `${origin.url}stored`, size: entrySize(entry) },
    ])
  })
})

describe('undici-http-cache:error', () => {
  it('names the request of a filter that threw, credentials as digests', async () => {
    const origin = await startCacheableOrigin()
    const messages = listen<ErrorMessage>('undici-http-cache:error')
    const agent = createTestAgent({
      filter: () => {
        throw new Error('the filter broke')
      },
    })
    expect((await get(`${origin.url}filtered?api_key=SECRET-KEY`, agent)).status).toBe(200)
    expect(messages.map((message) => [message.operation, message.error.message])).toEqual([['filter', 'the filter broke']])
    expect(messages[0]!.request?.path).toMatch(/^\/filtered\?api_key=redacted:/)
    expect(JSON.stringify(messages[0]!.request)).not.toContain('SECRET-KEY')
  })

  it('tells a store call that failed, and a key function that threw; the requests still succeed', async () => {
    const origin = await startCacheableOrigin()
    const messages = listen<ErrorMessage>('undici-http-cache:error')
    const failing: CacheStore = {
      get: () => {
        throw new Error('the disk is gone')
      },
      set: () => {},
      delete: () => {},
      keys: () => [],
      clear: () => {},
    }
    const throughFailingStore = await get(`${origin.url}a`, createTestAgent({ store: failing }))
    const throughFailingKey = await get(
      `${origin.url}b`,
      createTestAgent({
        key: () => {
          throw new Error('no key for you')
        },
      }),
    )
    expect([throughFailingStore.status, throughFailingKey.status]).toEqual([200, 200])
    expect(messages.map((message) => [message.operation, message.error.message, typeof message.key, message.request?.path])).toEqual([
      ['get', 'the disk is gone', 'string', undefined], // a store call names its key
      ['key', 'no key for you', 'undefined', '/b'], // a failure of the request's own names the request
    ])
  })
})

describe('messages hold no credential', () => {
  it('carries redacted values as digests and leaves ignored ones out, in every channel', async () => {
    const origin = await startCacheableOrigin()
    const responses = listen<ResponseMessage>('undici-http-cache:response')
    const stores = listen<StoreMessage>('undici-http-cache:store')
    const agent = createTestAgent({ ignoredParameters: ['session'], urlsExpireAfter: [['*/bypassed', 'no-store']] })
    const headers = { authorization: 'Bearer SECRET-TOKEN', 'x-api-key': 'SECRET-HEADER-KEY' }
    await get(`${origin.url}private?api_key=SECRET-QUERY-KEY&session=IGNORED-SESSION`, agent, { headers })
    await get(`${origin.url}private?api_key=SECRET-QUERY-KEY&session=IGNORED-SESSION`, agent, { headers })
    await get(`${origin.url}bypassed?api_key=SECRET-QUERY-KEY&session=IGNORED-SESSION`, agent, { headers })
    expect(responses.map((message) => message.status)).toEqual(['miss', 'hit', 'bypass'])
    expect(stores).toHaveLength(1)
    const text = JSON.stringify([...responses, ...stores])
    for (const secret of ['SECRET-TOKEN', 'SECRET-HEADER-KEY', 'SECRET-QUERY-KEY', 'IGNORED-SESSION']) expect(text).not.toContain(secret)
    expect(responses[2]!.request.path).toMatch(/^\/bypassed\?api_key=redacted/)
    expect(responses[2]!.request.headers.authorization).toMatch(/^redacted/)
  })
})

describe('a subscriber that throws', () => {
  it('fails no request and stops no other subscriber; its error reaches uncaughtException, as on any channel', () => {
    // In a process of its own: the thrown error is reported as uncaught, which the test runner would count.
    const script = `
      import diagnosticsChannel from 'node:diagnostics_channel'
      import { createServer } from 'node:http'
      import { request } from 'undici'
      import { CachingAgent } from 'undici-http-cache'
      const uncaught = []
      process.on('uncaughtException', (error) => uncaught.push(error.message))
      const statuses = []
      diagnosticsChannel.subscribe('undici-http-cache:response', () => { throw new Error('subscriber broke') })
      diagnosticsChannel.subscribe('undici-http-cache:response', (message) => statuses.push(message.status))
      const server = createServer((_request, response) => response.writeHead(200, { 'cache-control': 'max-age=60' }).end('fine'))
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
      const agent = new CachingAgent()
      const bodies = []
      for (let i = 0; i < 2; i++) bodies.push(await (await request('http://127.0.0.1:' + server.address().port + '/', { dispatcher: agent })).body.text())
      await new Promise((resolve) => setImmediate(resolve))
      server.close()
      await agent.close()
      console.log(JSON.stringify({ bodies, statuses, uncaught }))
    `
    const root = fileURLToPath(new URL('..', import.meta.url))
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 })
    expect(result.status).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({ bodies: ['fine', 'fine'], statuses: ['miss', 'hit'], uncaught: ['subscriber broke', 'subscriber broke'] })
  })
})

describe('undici-http-cache:request, a tracing channel', () => {
  const tracing = diagnosticsChannel.tracingChannel<unknown, RequestTrace>('undici-http-cache:request')

  /** Each event of each trace, as [event, trace object, status then]. */
  function trace(): Array<[string, RequestTrace, string | undefined]> {
    const events: Array<[string, RequestTrace, string | undefined]> = []
    const record = (name: string) => (trace: unknown) => void events.push([name, trace as RequestTrace, (trace as RequestTrace).status])
    const subscribers = { start: record('start'), end: record('end'), asyncStart: record('asyncStart'), asyncEnd: record('asyncEnd'), error: record('error') }
    tracing.subscribe(subscribers)
    onTestFinished(() => void tracing.unsubscribe(subscribers))
    return events
  }

  it('makes one trace per request, hit or not, told at its end what the cache did', async () => {
    const origin = await startCacheableOrigin()
    const events = trace()
    const agent = createTestAgent()
    await get(`${origin.url}traced`, agent)
    await get(`${origin.url}traced`, agent)
    expect(events.map(([name, , status]) => `${name} ${status}`)).toEqual([
      'start undefined', 'end undefined', 'asyncStart miss', 'asyncEnd miss',
      'start undefined', 'end undefined', 'asyncStart hit', 'asyncEnd hit',
    ])
    const [miss, hit] = [events[0]![1], events[4]![1]]
    expect(events.slice(0, 4).every(([, trace]) => trace === miss)).toBe(true)
    expect(events.slice(4).every(([, trace]) => trace === hit)).toBe(true)
    expect(hit).toMatchObject({ request: { method: 'GET', path: '/traced' }, status: 'hit', statusCode: 200 })
    expect(hit.cacheStatus).toMatch(/^undici-http-cache; hit/)
  })

  it('publishes error for a response that failed, then ends the trace', async () => {
    const origin = await startOrigin((request) => void request.socket.destroy())
    const events = trace()
    await expect(get(`${origin.url}reset`, createTestAgent())).rejects.toThrow()
    expect(events.map(([name]) => name)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
    expect(events[2]![1].error).toBeInstanceOf(Error)
  })

  it('ends the trace of an upgrade, which no end or error follows', async () => {
    const server = createServer((_request, response) => void response.writeHead(426).end())
    server.on('upgrade', (_request, socket: Duplex) => socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    onTestFinished(() => void server.close())
    const events = trace()
    const agent = createTestAgent()
    const { socket } = await upgrade(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { dispatcher: agent, protocol: 'echo' })
    socket.destroy()
    expect(events.map(([name]) => name)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd'])
    expect(events[3]![1].statusCode).toBe(101)
  })

  it('passes every callback on as it would untraced, and ends once when the caller throws at the end', async () => {
    const origin = await startCacheableOrigin()
    const untraced = await dispatchRecording(createTestAgent(), origin.url)
    const events = trace()
    const traced = await dispatchRecording(createTestAgent(), origin.url)
    expect(traced).toEqual(untraced)
    expect(traced).toEqual(expect.arrayContaining(['end threw', 'error: the caller broke']))
    // undici 8 calls these of a dispatch handler; undici 7 only of a legacy one.
    if (process.env.UNDICI_MAJOR !== '7') expect(traced).toEqual(expect.arrayContaining(['bodySent', 'requestSent']))
    expect(events.map(([name]) => name)).toEqual(['start', 'end', 'asyncStart', 'error', 'asyncEnd'])
  })

  it('names no credential written in the origin or after a fragment of a request it does not key', async () => {
    const origin = await startCacheableOrigin()
    const events = trace()
    const responses = listen<ResponseMessage>('undici-http-cache:response')
    const agent = createTestAgent()
    const withCredentials = origin.url.replace('http://', 'http://alice:ORIGIN-SECRET@').replace(/\/$/, '')
    await new Promise<void>((resolve, reject) => {
      agent.dispatch(
        { origin: withCredentials, path: '/fragment?x=1#access_token=FRAGMENT-SECRET', method: 'GET' },
        { onRequestStart: () => {}, onResponseEnd: () => resolve(), onResponseError: (_controller, error) => reject(error) },
      )
    })
    expect(responses.map((message) => message.status)).toEqual(['bypass'])
    const text = JSON.stringify([responses, events.map(([, trace]) => trace)])
    expect(text).not.toContain('ORIGIN-SECRET')
    expect(text).not.toContain('FRAGMENT-SECRET')
    expect(responses[0]!.request).toMatchObject({ origin: origin.url.replace(/\/$/, ''), path: '/fragment?x=1' })
  })

  it('runs the dispatch inside the stores bound to start: what it sends on sees the trace as its parent', async () => {
    const origin = await startCacheableOrigin()
    const storage = new AsyncLocalStorage<RequestTrace>()
    tracing.start.bindStore(storage, (trace) => trace)
    onTestFinished(() => void tracing.start.unbindStore(storage))
    const seenBelow: Array<RequestTrace | undefined> = []
    const below = new Agent().compose((dispatch: Dispatcher.Dispatch) => (options, handler) => {
      seenBelow.push(storage.getStore())
      return dispatch(options, handler)
    })
    const agent = new CachingAgent({ dispatcher: below })
    onTestFinished(() => agent.close())
    await get(`${origin.url}parent`, agent)
    expect(seenBelow).toHaveLength(1)
    expect(seenBelow[0]?.request.path).toBe('/parent')
  })
})

/**
 * A PUT through `agent.dispatch()` with a handler that records each callback and throws in onResponseEnd;
 * undici reports that throw to onResponseError. Resolves with what it recorded, once it had its error.
 */
function dispatchRecording(agent: Dispatcher, url: string): Promise<string[]> {
  const seen: string[] = []
  return new Promise((resolve) => {
    agent.dispatch(
      { origin: new URL(url).origin, path: '/recorded', method: 'PUT', body: 'a body' },
      {
        onRequestStart: () => void seen.push('start'),
        onBodySent: () => void seen.push('bodySent'),
        onRequestSent: () => void seen.push('requestSent'),
        onResponseStart: (_controller, statusCode) => void seen.push(`head ${statusCode}`),
        onResponseData: () => void seen.push('data'),
        onResponseEnd: () => {
          seen.push('end threw')
          throw new Error('the caller broke')
        },
        onResponseError: (_controller, error) => {
          seen.push(`error: ${error.message}`)
          resolve(seen)
        },
      } as Dispatcher.DispatchHandler,
    )
  })
}
