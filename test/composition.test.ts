import { gzipSync } from 'node:zlib'
import { Agent, fetch, interceptors, request, RetryAgent, type Dispatcher } from 'undici'
import { describe, expect, it } from 'vitest'
import { cacheInfo } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { startOrigin } from './helpers/origin.js'

/**
 * requests-cache's throttle hook in undici's terms: an interceptor above the cache that holds back the
 * end of every response that was not served from the cache, so that only real origin traffic is slowed.
 */
function throttle(delayMs: number, delayed: string[]): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) => {
    let fromCache = false
    return dispatch(options, {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onResponseStart(controller, statusCode, headers, statusMessage) {
        fromCache = cacheInfo(headers as Record<string, string>).fromCache
        handler.onResponseStart?.(controller, statusCode, headers, statusMessage)
      },
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
      onResponseEnd(controller, trailers) {
        if (fromCache) return handler.onResponseEnd?.(controller, trailers)
        delayed.push(`${options.origin}${options.path}`)
        setTimeout(() => handler.onResponseEnd?.(controller, trailers), delayMs)
      },
    })
  }
}

describe('working with other undici parts', () => {
  it('lets a throttle composed above the cache slow down only the requests that reached the origin', async () => {
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end('throttled once')
    })
    const delayed: string[] = []
    const dispatcher = createTestAgent().compose(throttle(10, delayed))
    const bodies = []
    for (let index = 0; index < 3; index++) bodies.push(await (await request(origin.url, { dispatcher })).body.text())
    expect(bodies).toEqual(['throttled once', 'throttled once', 'throttled once'])
    expect(delayed).toEqual([`${origin.origin}/`])
    expect(origin.requests).toBe(1)
  })

  it('caches each hop of a redirect followed by interceptors.redirect above the cache', async () => {
    const origin = await startOrigin((request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      if (request.url === '/old') {
        response.writeHead(301, { location: '/new' }).end()
        return
      }
      response.end(`at ${request.url}`)
    })
    const dispatcher = createTestAgent().compose(interceptors.redirect({ maxRedirections: 3 }))
    const first = await request(`${origin.url}old`, { dispatcher })
    expect(await first.body.text()).toBe('at /new')
    const second = await request(`${origin.url}old`, { dispatcher })
    expect(await second.body.text()).toBe('at /new')
    expect(cacheInfo(second.headers).status).toBe('hit')
    expect(origin.received.map((received) => received.url)).toEqual(['/old', '/new'])
  })

  // interceptors.decompress rewrites the controller's rawHeaders in place (splice): hits that shared one raw
  // array (issue #17's H1) would lose Content-Encoding for every later caller, or throw were it frozen.
  it('serves gzip hits under interceptors.decompress above the cache without changing what other callers get', async () => {
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.setHeader('content-encoding', 'gzip')
      response.end(gzipSync('inflated every time'))
    })
    const agent = createTestAgent()
    const decompressing = agent.compose(interceptors.decompress())
    const answers = []
    for (let index = 0; index < 3; index++) {
      const response = await request(origin.url, { dispatcher: decompressing })
      answers.push([await response.body.text(), response.headers['content-encoding'], cacheInfo(response.headers).status])
    }
    const plain = await fetch(origin.url, { dispatcher: agent })
    answers.push([await plain.text(), plain.headers.get('content-encoding'), cacheInfo(Object.fromEntries(plain.headers)).status])
    expect(answers).toEqual([
      ['inflated every time', undefined, 'miss'],
      ['inflated every time', undefined, 'hit'],
      ['inflated every time', undefined, 'hit'],
      ['inflated every time', 'gzip', 'hit'],
    ])
    expect(origin.requests).toBe(1)
  })

  it("gives each hit headers of its own: a handler above that changes them changes no later caller's", async () => {
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.setHeader('x-kept', 'as stored')
      response.end('body')
    })
    const agent = createTestAgent()
    const rewriting = agent.compose((dispatch) => (options, handler) =>
      dispatch(options, {
        ...handler,
        onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
        onResponseStart(controller, statusCode, headers, statusMessage) {
          delete (headers as Record<string, string>)['x-kept']
          ;(headers as Record<string, string>)['x-added'] = 'by a handler'
          const raw = controller.rawHeaders as Buffer[]
          raw.splice(0, raw.length, Buffer.from('x-added'), Buffer.from('by a handler'))
          handler.onResponseStart?.(controller, statusCode, headers, statusMessage)
        },
        onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
        onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
        onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
      }),
    )
    await (await request(origin.url, { dispatcher: agent })).body.text()
    for (let index = 0; index < 2; index++) await (await request(origin.url, { dispatcher: rewriting })).body.text()
    const viaRequest = await request(origin.url, { dispatcher: agent })
    await viaRequest.body.text()
    const viaFetch = await fetch(origin.url, { dispatcher: agent })
    await viaFetch.text()
    expect([viaRequest.headers['x-kept'], viaRequest.headers['x-added'], cacheInfo(viaRequest.headers).status]).toEqual(['as stored', undefined, 'hit'])
    expect([viaFetch.headers.get('x-kept'), viaFetch.headers.get('x-added')]).toEqual(['as stored', null])
  })

  it('stores only the final answer of a RetryAgent below the cache, after it retried a 503', async () => {
    let attempts = 0
    const origin = await startOrigin((_request, response) => {
      if (++attempts === 1) {
        response.writeHead(503, { 'retry-after': '0' }).end('busy')
        return
      }
      response.setHeader('cache-control', 'max-age=60')
      response.end('ready')
    })
    const retrying = new RetryAgent(new Agent(), { minTimeout: 1, maxTimeout: 5, statusCodes: [503] })
    const agent = createTestAgent({ dispatcher: retrying })
    const first = await request(origin.url, { dispatcher: agent })
    expect([first.statusCode, await first.body.text()]).toEqual([200, 'ready'])
    const second = await request(origin.url, { dispatcher: agent })
    expect([second.statusCode, await second.body.text(), cacheInfo(second.headers).status]).toEqual([200, 'ready', 'hit'])
    expect(origin.requests).toBe(2)
  })

  it('streams a cached and an uncached body through the same reading code', async () => {
    const line = 'x'.repeat(99) + '\n'
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end(line.repeat(10_000)) // 1,000,000 bytes: more than one chunk either way
    })
    const agent = createTestAgent()
    async function readLines(): Promise<{ lines: number; chunks: number; status: string | undefined }> {
      const response = await request(origin.url, { dispatcher: agent })
      let lines = 0
      let chunks = 0
      for await (const chunk of response.body) {
        chunks++
        lines += (chunk as Buffer).toString().split('\n').length - 1
      }
      return { lines, chunks, status: cacheInfo(response.headers).status }
    }
    const uncached = await readLines()
    const cached = await readLines()
    expect(uncached).toMatchObject({ lines: 10_000, status: 'miss' })
    expect(cached).toMatchObject({ lines: 10_000, status: 'hit' })
    expect(Math.min(uncached.chunks, cached.chunks)).toBeGreaterThan(1)
    expect(origin.requests).toBe(1)
  })
})
