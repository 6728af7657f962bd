// A cache that survives restarts: SqliteStore keeps entries in a file (node:sqlite). Here a second agent,
// as after a restart, serves what the first stored; several processes may share the file too.
// Run: npm run build && node examples/sqlite-store.mjs
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { CachingAgent, SqliteStore, cacheInfo } from 'undici-http-cache'

let served = 0
const origin = createServer((req, res) => {
  res.setHeader('cache-control', 'max-age=3600')
  res.end(`response ${++served}`)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${origin.address().port}/report`
const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-example-'))
const path = join(directory, 'http-cache.db')

for (const run of ['first run', 'after a restart']) {
  const store = new SqliteStore({ path, maxSize: 64 * 1024 * 1024 })
  const agent = new CachingAgent({ store })
  const response = await request(url, { dispatcher: agent })
  console.log(`${run}: ${cacheInfo(response.headers).status}, ${await response.body.text()}`)
  await agent.close()
  store.close() // the agent never closes a store: it may be shared
}
assert.equal(served, 1)

origin.close()
rmSync(directory, { recursive: true, force: true })
