// What is stored and for how long: requests-cache's filter_fn, expire_after, urls_expire_after and
// allowable_codes. Server headers win: these options fill in only where the origin said nothing.
// Run: npm run build && node examples/filter-and-expiry.mjs
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { request } from 'undici'
import { CachingAgent, cacheInfo } from 'undici-http-cache'

const MIB = 1024 * 1024
// The origin sends no Cache-Control at all, except on /explicit; /large is 2 MiB, /missing a 404.
let served = 0
const origin = createServer((req, res) => {
  served++
  if (req.url === '/explicit') res.setHeader('cache-control', 'max-age=5')
  if (req.url === '/missing') res.statusCode = 404
  res.end(req.url === '/large' ? Buffer.alloc(2 * MIB, 'x') : `body of ${req.url}`)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`

const agent = new CachingAgent({
  // Do not cache bodies over 1 MiB (asked once the body is whole, and again before serving).
  filter: (request, response) => response.body.byteLength <= MIB,
  // Responses with no freshness of their own are fresh for a minute...
  defaultTtl: 60,
  // ...except these, first match wins: a glob on host and path (the port may be left out) or a RegExp.
  urlsExpireAfter: [
    [`127.0.0.1/static/**`, 'never'],
    [/\/live$/, 'no-store'],
  ],
  // Only 200s are stored (404s pass through).
  allowedStatuses: [200],
})

async function twice(path) {
  const statuses = []
  for (let i = 0; i < 2; i++) {
    const response = await request(`${base}${path}`, { dispatcher: agent })
    await response.body.arrayBuffer()
    const info = cacheInfo(response.headers)
    statuses.push(info.status)
    if (i === 1) console.log(`${path.padEnd(22)} ${statuses.join(' then ').padEnd(16)} expires ${info.expires?.toISOString() ?? '-'}`)
  }
  return statuses[1]
}

assert.equal(await twice('/page'), 'hit') // defaultTtl: fresh for 60 s
assert.equal(await twice('/static/app.js'), 'hit') // 'never' expires
assert.equal(await twice('/explicit'), 'hit') // the origin's max-age=5 wins over defaultTtl
assert.equal(await twice('/live'), 'bypass') // 'no-store'
assert.equal(await twice('/large'), 'miss') // refused by the filter
assert.equal(await twice('/missing'), 'miss') // not an allowed status
assert.equal(served, 9)

await agent.close()
origin.close()
