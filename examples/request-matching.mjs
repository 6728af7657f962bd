// Request matching, as requests-cache users know it: which requests share a stored response.
// Run: npm run build && node examples/request-matching.mjs
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { request } from 'undici'
import { CachingAgent, cacheInfo, DEFAULT_REDACTED_PARAMETERS } from 'undici-http-cache'

// A loopback origin whose responses are fresh for a minute and say which request made them.
let served = 0
const origin = createServer(async (req, res) => {
  let body = ''
  for await (const chunk of req) body += chunk
  res.setHeader('cache-control', 'max-age=60')
  res.end(`response ${++served} to ${req.method} ${req.url} ${body}`)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`

async function send(agent, path, options = {}) {
  const response = await request(`${base}${path}`, { dispatcher: agent, ...options })
  const body = await response.body.text()
  const { status } = cacheInfo(response.headers)
  console.log(`${(options.method ?? 'GET').padEnd(4)} ${path.padEnd(42)} ${status.padEnd(6)} ${body}`)
  return status
}

// redactedParameters: credentials, kept and shown only as digests, which still tell users apart.
const users = new CachingAgent({ redactedParameters: [...DEFAULT_REDACTED_PARAMETERS, 'session-id'] })
await send(users, '/me?api_key=ALICE')
assert.equal(await send(users, '/me?api_key=BOB'), 'miss')
assert.equal(await send(users, '/me?api_key=ALICE'), 'hit')
await send(users, '/me', { headers: { authorization: 'Bearer alice' } })
assert.equal(await send(users, '/me', { headers: { authorization: 'Bearer alice' } }), 'hit')
assert.equal((await users.cache.urls()).join().includes('ALICE'), false)
await users.close()

// ignoredParameters: left out of the key, so that requests differing only in them share a response, and
// out of what is stored.
const agent = new CachingAgent({ ignoredParameters: ['auth-token'] })
await send(agent, '/get?auth-token=2F63E5DF4F44')
assert.equal(await send(agent, '/get?auth-token=D9FAEB3449D3'), 'hit')
// Query parameters match in any order.
await send(agent, '/search?b=2&a=1')
assert.equal(await send(agent, '/search?a=1&b=2'), 'hit')
await agent.close()

// matchHeaders: request headers that select a response even when the origin sends no Vary.
const byAccept = new CachingAgent({ matchHeaders: ['Accept'] })
await send(byAccept, '/headers', { headers: { accept: 'text/plain' } })
assert.equal(await send(byAccept, '/headers', { headers: { accept: 'application/json' } }), 'miss')
assert.equal(await send(byAccept, '/headers', { headers: { accept: 'text/plain' } }), 'hit')
await byAccept.close()

// POST cached with its body in the key: JSON members in any order match, ignored members too.
const posts = new CachingAgent({ methods: ['GET', 'HEAD', 'POST'], ignoredParameters: ['auth-token'] })
const json = (value) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) })
await send(posts, '/graphql', json({ query: '{ me }', 'auth-token': '2F63E5DF4F44' }))
assert.equal(await send(posts, '/graphql', json({ 'auth-token': 'D9FAEB3449D3', query: '{ me }' })), 'hit')
await posts.close()

// A custom key function: only "gzip or not" of Accept-Encoding matters; createKey does the rest.
const gzipOrNothing = new CachingAgent({
  matchHeaders: ['Accept-Encoding'],
  key(request, { createKey }) {
    const headers = { ...request.headers }
    if ((headers['accept-encoding'] ?? '').includes('gzip')) headers['accept-encoding'] = 'gzip'
    else delete headers['accept-encoding']
    return createKey({ ...request, headers })
  },
})
await send(gzipOrNothing, '/encoded', { headers: { 'accept-encoding': 'gzip, compress, br' } })
assert.equal(await send(gzipOrNothing, '/encoded', { headers: { 'accept-encoding': 'gzip' } }), 'hit')
await gzipOrNothing.close()

assert.equal(served, 9)
origin.close()
