// Cache inspection, as requests-cache users know it: per-response metadata (from cache? created?
// expires?), the URLs and entries stored, getting and deleting entries, and stats.
// Run: npm run build && node examples/inspection.mjs
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { fetch, request } from 'undici'
import { CachingAgent, cacheInfo } from 'undici-http-cache'

const origin = createServer((req, res) => {
  res.setHeader('cache-control', 'max-age=86400')
  res.end(`body of ${req.method} ${req.url}`)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`
const agent = new CachingAgent({ methods: ['GET', 'HEAD', 'POST'] })

// Response attributes: from_cache, created_at, expires, is_expired.
for (let i = 0; i < 2; i++) {
  const response = await request(`${base}/get`, { dispatcher: agent })
  await response.body.text()
  const { fromCache, createdAt, expires, isExpired } = cacheInfo(response.headers)
  console.log('request():', { fromCache, createdAt, expires, isExpired })
}
const fetched = await fetch(`${base}/get`, { dispatcher: agent })
await fetched.text()
assert.equal(cacheInfo(fetched.headers).fromCache, true) // fetch() responses carry the same metadata
await (await request(`${base}/stream/100`, { dispatcher: agent })).body.text()
await (await request(`${base}/post`, { dispatcher: agent, method: 'POST', body: 'q=1' })).body.text()

// Cache contents: the URLs, and every stored response with its request method.
console.log('urls:', await agent.cache.urls())
const postUrls = []
for await (const response of agent.cache.entries()) if (response.method === 'POST') postUrls.push(response.url)
console.log('requested with POST:', postUrls)
assert.deepEqual(postUrls, [`${base}/post`])

// One entry, as a request would find it; then deleting by URL, RegExp, expiry or age.
const entry = await agent.cache.get(`${base}/get`)
console.log('get():', entry.status, Buffer.from(entry.body).toString(), 'stored at', entry.createdAt.toISOString())
assert.equal(await agent.cache.delete(/\/stream\//), 1)
assert.equal(await agent.cache.delete({ expired: true }), 0)
console.log('stats:', agent.cache.stats)
const { bytesStored, ...counts } = agent.cache.stats
assert.deepEqual(counts, { hits: 2, misses: 3, revalidated: 0, stale: 0, stored: 3, evicted: 0, errors: 0, hitRatio: 2 / 5 })
assert.ok(bytesStored > 3 * 1024, 'three responses, each counted with what holding it costs')

await agent.close()
origin.close()
