// The cache with other undici parts (requests-cache's "usage with other libraries"): a throttle for
// requests that reached the origin, a MockAgent standing in for the network, retries, redirects, and
// streaming cached and uncached bodies with the same code.
// Run: npm run build && node examples/other-undici-parts.mjs
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, interceptors, MockAgent, request, RetryAgent } from 'undici'
import { CachingAgent, cacheInfo } from 'undici-http-cache'

let attempts = 0
const origin = createServer((req, res) => {
  res.setHeader('cache-control', 'max-age=60')
  if (req.url === '/flaky' && ++attempts === 1) return res.writeHead(503, { 'retry-after': '0' }).end()
  if (req.url === '/old') return res.writeHead(301, { location: '/new' }).end()
  res.end(req.url === '/lines' ? 'line\n'.repeat(50_000) : `body of ${req.url}`)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`

// A request hook that sleeps after responses that were not served from the cache: an interceptor
// composed above the cache sees Cache-Status on every response.
const throttled = []
const throttle = (delayMs) => (dispatch) => (options, handler) =>
  dispatch(options, {
    onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
    onResponseStart(controller, status, headers, statusText) {
      this.fromCache = cacheInfo(headers).fromCache
      handler.onResponseStart?.(controller, status, headers, statusText)
    },
    onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
    onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    async onResponseEnd(controller, trailers) {
      if (!this.fromCache) {
        throttled.push(options.path)
        await sleep(delayMs)
      }
      handler.onResponseEnd?.(controller, trailers)
    },
  })
const agent = new CachingAgent()
const withThrottle = agent.compose(throttle(100))
for (let i = 0; i < 3; i++) await (await request(`${base}/get`, { dispatcher: withThrottle })).body.text()
console.log('throttled:', throttled) // only the first request, the one that reached the origin
assert.deepEqual(throttled, ['/get'])

// requests-mock: a MockAgent below the cache; the reply given once serves every request while fresh.
const mockAgent = new MockAgent()
mockAgent.disableNetConnect()
mockAgent.get('http://mock.test').intercept({ path: '/some_test_url' }).reply(200, 'mock response', {
  headers: { 'content-type': 'text/plain', 'cache-control': 'max-age=60' },
})
const mocked = new CachingAgent({ dispatcher: mockAgent })
for (let i = 0; i < 2; i++) {
  const response = await request('http://mock.test/some_test_url', { dispatcher: mocked })
  console.log('mock:', await response.body.text(), cacheInfo(response.headers).status)
}

// Retries below the cache (only the final answer is stored), redirects above it (each hop cached).
const retrying = new CachingAgent({ dispatcher: new RetryAgent(new Agent(), { minTimeout: 10, statusCodes: [503] }) })
const flaky = await request(`${base}/flaky`, { dispatcher: retrying })
console.log('retried:', flaky.statusCode, await flaky.body.text())
const redirecting = agent.compose(interceptors.redirect({ maxRedirections: 3 }))
await (await request(`${base}/old`, { dispatcher: redirecting })).body.text()
console.log('after a redirect:', await agent.cache.urls())
assert.deepEqual(await agent.cache.urls(), [`${base}/get`, `${base}/new`, `${base}/old`])

// Streaming: the same loop reads an uncached and a cached body, chunk by chunk.
for (let i = 0; i < 2; i++) {
  const response = await request(`${base}/lines`, { dispatcher: agent })
  let lines = 0
  for await (const chunk of response.body) lines += chunk.toString().split('\n').length - 1
  console.log(`streamed ${lines} lines, ${cacheInfo(response.headers).status}`)
  assert.equal(lines, 50_000)
}

await Promise.all([agent.close(), mocked.close(), retrying.close()])
origin.close()
