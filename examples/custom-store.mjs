// A custom store: the CacheStore interface is five methods, any of which may return a promise. This one
// keeps each entry in a file of its own, in a directory, serialised with node:v8 (which keeps the body
// bytes as bytes). The cache guards every call: a store that throws never fails a request.
// Run: npm run build && node examples/custom-store.mjs
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deserialize, serialize } from 'node:v8'
import { request } from 'undici'
import { CachingAgent, cacheInfo } from 'undici-http-cache'

class DirectoryStore {
  constructor(directory) {
    this.directory = directory
  }

  // Keys may hold any character; file names may not. The key itself is kept in the file, for keys().
  #path(key) {
    return join(this.directory, createHash('sha256').update(key).digest('hex'))
  }

  async get(key) {
    try {
      return deserialize(await readFile(this.#path(key))).entry
    } catch (error) {
      if (error.code === 'ENOENT') return undefined
      throw error
    }
  }

  async set(key, entry) {
    await writeFile(this.#path(key), serialize({ key, entry }))
  }

  async delete(key) {
    await rm(this.#path(key), { force: true })
  }

  async *keys() {
    for (const name of await readdir(this.directory)) {
      yield deserialize(await readFile(join(this.directory, name))).key
    }
  }

  async clear() {
    await rm(this.directory, { recursive: true, force: true })
    await mkdir(this.directory)
  }
}

const directory = await mkdtemp(join(tmpdir(), 'undici-http-cache-example-'))

let served = 0
const origin = createServer((req, res) => {
  res.setHeader('cache-control', 'max-age=60')
  res.end(`stored on disk, response ${++served}`)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${origin.address().port}/report`

// Two agents, one directory: what the first stored, the second serves (as after a restart).
for (const label of ['first agent', 'second agent']) {
  const agent = new CachingAgent({ store: new DirectoryStore(directory) })
  const response = await request(url, { dispatcher: agent })
  console.log(`${label}: ${cacheInfo(response.headers).status} ${await response.body.text()}`)
  await agent.close()
}
assert.equal(served, 1)
console.log(`files in ${directory}: ${(await readdir(directory)).length}`)

origin.close()
await rm(directory, { recursive: true, force: true })
