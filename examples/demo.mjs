// The demo behind `npm run demo`: a loopback origin, a CachingAgent in front of it, and a few requests
// that show a miss, hits, a HEAD served from a stored GET, a response that may not be stored, a stale
// entry revalidated with a 304, stale-while-revalidate, stale-if-error and only-if-cached. Each line:
// what happened, the Cache-Status the cache wrote, and how long the request took.
import { createServer } from 'node:http'
import { performance } from 'node:perf_hooks'
import { request, setGlobalDispatcher } from 'undici'
import { CachingAgent, cacheInfo } from 'undici-http-cache'

const CACHE_CONTROL = {
  '/no-store': 'no-store',
  '/short': 'max-age=1',
  '/swr': 'max-age=1, stale-while-revalidate=60',
  '/sie': 'max-age=1, stale-if-error=60',
}
let sieRequests = 0

const origin = createServer((req, res) => {
  // A little latency, so a hit's speed shows.
  setTimeout(() => {
    if (req.url === '/sie' && ++sieRequests > 1) {
      res.writeHead(503)
      return res.end('the origin is down')
    }
    res.setHeader('cache-control', CACHE_CONTROL[req.url] ?? 'max-age=60')
    res.setHeader('etag', '"v1"')
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304)
      return res.end()
    }
    res.end(`body of ${req.url}`)
  }, 20)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`

const agent = new CachingAgent()

function print(label, status, headers, startedAt) {
  const ms = (performance.now() - startedAt).toFixed(1)
  const info = cacheInfo(headers)
  const cacheStatus = typeof headers.get === 'function' ? headers.get('cache-status') : headers['cache-status']
  console.log(`${label.padEnd(48)} ${status} ${String(info.status).padEnd(11)} ${ms.padStart(6)} ms  ${cacheStatus}`)
}

async function show(label, url, options = {}) {
  const started = performance.now()
  const response = await request(url, { dispatcher: agent, ...options })
  await response.body.text()
  print(label, response.statusCode, response.headers, started)
}

console.log(`origin ${base}\n`)
await show('GET /page (first time)', `${base}/page`)
await show('GET /page (again)', `${base}/page`)
await show('HEAD /page (from the stored GET)', `${base}/page`, { method: 'HEAD' })
await show('GET /no-store', `${base}/no-store`)
await show('GET /no-store (again: never stored)', `${base}/no-store`)
for (const path of ['/short', '/swr', '/sie']) await show(`GET ${path} (${CACHE_CONTROL[path]})`, `${base}${path}`)
await new Promise((resolve) => setTimeout(resolve, 1100))
await show('GET /short, now stale: revalidated, 304', `${base}/short`)
await show('GET /swr, stale: served, refreshed behind', `${base}/swr`)
await show('GET /sie, stale, origin answers 503', `${base}/sie`)
await show('GET /never-seen with only-if-cached', `${base}/never-seen`, { headers: { 'cache-control': 'only-if-cached' } })

// Node's own fetch follows the global dispatcher too.
setGlobalDispatcher(agent)
const started = performance.now()
const fetched = await fetch(`${base}/page`)
await fetched.text()
print('global fetch GET /page', fetched.status, fetched.headers, started)

await agent.close()
origin.close()
