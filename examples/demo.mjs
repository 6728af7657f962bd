// The demo behind `npm run demo`: a loopback origin, a CachingAgent in front of it, and a few requests
// that show a miss, hits, a HEAD served from a stored GET, a response that may not be stored, a stale
// entry served under the request's max-stale, and only-if-cached. Each line: what happened, the
// Cache-Status the cache wrote, and how long the request took.
import { createServer } from 'node:http'
import { performance } from 'node:perf_hooks'
import { request, setGlobalDispatcher } from 'undici'
import { CachingAgent, cacheInfo } from 'undici-http-cache'

const origin = createServer((req, res) => {
  // A little latency, so a hit's speed shows.
  setTimeout(() => {
    if (req.url === '/no-store') res.setHeader('cache-control', 'no-store')
    else if (req.url === '/short') res.setHeader('cache-control', 'max-age=1')
    else res.setHeader('cache-control', 'max-age=60')
    res.end(`body of ${req.url} at ${new Date().toISOString()}`)
  }, 20)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`

const agent = new CachingAgent()

async function show(label, url, options = {}) {
  const started = performance.now()
  const response = await request(url, { dispatcher: agent, ...options })
  await response.body.text()
  const ms = (performance.now() - started).toFixed(1)
  const info = cacheInfo(response.headers)
  console.log(`${label.padEnd(44)} ${response.statusCode} ${String(info.status).padEnd(6)} ${ms.padStart(6)} ms  ${response.headers['cache-status']}`)
}

console.log(`origin ${base}\n`)
await show('GET /page (first time)', `${base}/page`)
await show('GET /page (again)', `${base}/page`)
await show('HEAD /page (from the stored GET)', `${base}/page`, { method: 'HEAD' })
await show('GET /no-store', `${base}/no-store`)
await show('GET /no-store (again: never stored)', `${base}/no-store`)
await show('GET /short (max-age=1)', `${base}/short`)
await new Promise((resolve) => setTimeout(resolve, 1100))
await show('GET /short, now stale, with max-stale=60', `${base}/short`, { headers: { 'cache-control': 'max-stale=60' } })
await show('GET /short, stale, no max-stale (to origin)', `${base}/short`)
await show('GET /never-seen with only-if-cached', `${base}/never-seen`, { headers: { 'cache-control': 'only-if-cached' } })

// Node's own fetch follows the global dispatcher too.
setGlobalDispatcher(agent)
const started = performance.now()
const fetched = await fetch(`${base}/page`)
await fetched.text()
console.log(`${'global fetch GET /page'.padEnd(44)} ${fetched.status} ${String(cacheInfo(fetched.headers).status).padEnd(6)} ${(performance.now() - started).toFixed(1).padStart(6)} ms  ${fetched.headers.get('cache-status')}`)

await agent.close()
origin.close()
