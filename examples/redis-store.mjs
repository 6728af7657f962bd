// One cache for many processes and hosts: RedisStore, on a node-redis (or ioredis) client you create.
// Two agents stand for two processes here; what one stores, the other serves.
// Run: npm run build && REDIS_URL=redis://127.0.0.1:6379 node examples/redis-store.mjs
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { createClient } from 'redis'
import { request } from 'undici'
import { CachingAgent, RedisStore, cacheInfo } from 'undici-http-cache'

let served = 0
const origin = createServer((req, res) => {
  res.setHeader('cache-control', 'max-age=3600')
  res.end(`response ${++served}`)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${origin.address().port}/shared`

const client = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' })
client.on('error', (error) => console.error('redis:', error.message)) // a client without this listener crashes on a lost connection
await client.connect()
const prefix = `undici-http-cache-example:${process.pid}:` // keep this example's keys apart

for (const name of ['process A', 'process B']) {
  const agent = new CachingAgent({ store: new RedisStore({ client, prefix }) })
  const response = await request(url, { dispatcher: agent })
  console.log(`${name}: ${cacheInfo(response.headers).status}, ${await response.body.text()}`)
  await agent.close()
}
assert.equal(served, 1)

await new RedisStore({ client, prefix }).clear()
client.destroy()
origin.close()
