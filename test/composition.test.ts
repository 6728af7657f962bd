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
