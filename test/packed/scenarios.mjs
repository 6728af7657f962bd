// What a user does with the installed package (issue #16 part 10). run.mjs copies this file into a temporary
// project where the packed tarball is installed beside undici, and runs it there through drive.mjs (ESM) and
// drive.cjs (CommonJS), which hand over the package and undici as their module system loads them. Each
// check prints one line, "ok <name>" or "not ok <name>" then a tab and why, that run.mjs counts as a test.
// Every request goes to a real node:http origin on 127.0.0.1; a hit or a miss is read from Cache-Status and
// from the origin's count.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Runs every check. `load()` returns `{ cache, undici, resolved }`: the package and undici as the driver's
 * module system loads them, and the file the package's name resolved to. `entry` is the file name that
 * resolution must end with (the `import` or `require` condition of the package's `exports`).
 */
export async function runScenarios({ load, entry }) {
  let loaded
  await check('loads the package, its runtime dependencies and undici', async () => {
    loaded = await load()
  })
  if (loaded === undefined) return
  const origin = await startOrigin()
  try {
    const context = { ...loaded, origin }
    await check(`resolves the package to its ${entry} build`, () => assert.ok(loaded.resolved.endsWith(entry), loaded.resolved))
    for (const [name, run] of Object.entries(checks)) await check(name, () => run(context))
  } finally {
    await origin.stop()
  }
}

const checks = {
  'CachingAgent extends the Dispatcher of the undici installed beside it (one copy of undici)': ({ cache, undici }) => {
    const agent = new cache.CachingAgent()
    assert.ok(agent instanceof undici.Dispatcher, 'CachingAgent is not an instance of the project undici Dispatcher')
    return agent.close()
  },
  "setGlobalDispatcher(new CachingAgent()): undici request(), undici fetch() and Node's global fetch miss, then hit": async (context) => {
    const { cache, undici, origin } = context
    const previous = undici.getGlobalDispatcher()
    const agent = new cache.CachingAgent()
    undici.setGlobalDispatcher(agent)
    try {
      await expectMissThenHit(context, origin.path('global-request'), (url) => sendWithRequest(undici, url))
      await expectMissThenHit(context, origin.path('global-undici-fetch'), (url) => sendWithFetch(undici.fetch, url))
      await expectMissThenHit(context, origin.path('global-node-fetch'), (url) => sendWithFetch(globalThis.fetch, url))
    } finally {
      undici.setGlobalDispatcher(previous)
      await agent.close()
    }
  },
  'a Client composed with cacheInterceptor(): request() misses, then hits': async (context) => {
    const { cache, undici, origin } = context
    const client = new undici.Client(origin.origin).compose(cache.cacheInterceptor({ store: new cache.MemoryStore() }))
    try {
      await expectMissThenHit(context, origin.path('composed'), (url) => sendWithRequest(undici, url, { dispatcher: client }))
    } finally {
      await client.close()
    }
  },
  'the per-request dispatcher option: request() and fetch() miss, then hit': async (context) => {
    const { cache, undici, origin } = context
    const agent = new cache.CachingAgent()
    try {
      await expectMissThenHit(context, origin.path('per-request'), (url) => sendWithRequest(undici, url, { dispatcher: agent }))
      await expectMissThenHit(context, origin.path('per-request-fetch'), (url) => sendWithFetch(undici.fetch, url, { dispatcher: agent }))
    } finally {
      await agent.close()
    }
  },
  'SqliteStore: a second agent on the same file hits what the first stored': async (context) => {
    const { cache, undici, origin } = context
    const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-packed-sqlite-'))
    const url = origin.path('sqlite')
    const sendThroughNewAgent = (status) =>
      viaAgent(cache, new cache.SqliteStore({ path: join(directory, 'cache.db') }), (agent) =>
        expectSeen(context, url, () => sendWithRequest(undici, url, { dispatcher: agent }), status),
      )
    try {
      await sendThroughNewAgent('miss')
      await sendThroughNewAgent('hit')
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  },
}

/** Runs `use` with a CachingAgent on `store`, then closes both (the agent first, so its writes are done). */
async function viaAgent(cache, store, use) {
  const agent = new cache.CachingAgent({ store })
  try {
    await use(agent)
  } finally {
    await agent.close()
    store.close()
  }
}

/** Prints "ok" or "not ok" (then a tab and why) for one check; a failure never stops the checks after it. */
async function check(name, run) {
  try {
    await run()
    console.log(`ok ${name}`)
  } catch (error) {
    const why = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    console.log(`not ok ${name}\t${why.replaceAll('\n', ' | ')}`)
  }
}

/** Sends the same GET twice: a miss that reached the origin once, then a hit with the same body. */
async function expectMissThenHit(context, url, send) {
  await expectSeen(context, url, () => send(url), 'miss')
  await expectSeen(context, url, () => send(url), 'hit')
}

/** One request: status 200, the body of the origin's first answer, the cache status, one origin request. */
async function expectSeen({ cache, origin }, url, send, status) {
  const seen = await send()
  assert.deepEqual(
    { status: seen.status, body: seen.body, cacheStatus: cache.cacheInfo(seen.headers).status, originRequests: origin.requestsTo(url) },
    { status: 200, body: 'answer 1', cacheStatus: status, originRequests: 1 },
    `${url}: ${JSON.stringify(seen.headers['cache-status'] ?? seen.headers.get?.('cache-status'))}`,
  )
}

async function sendWithRequest(undici, url, options = {}) {
  const response = await undici.request(url, options)
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() }
}

async function sendWithFetch(fetch, url, options = {}) {
  const response = await fetch(url, options)
  // cacheInfo() reads a Headers through get(); the global fetch's Headers is Node's own class.
  return { status: response.status, headers: { get: (name) => response.headers.get(name) }, body: await response.text() }
}

/** An origin on 127.0.0.1 that answers each path "answer <n>" (its n-th request), fresh for a minute. */
async function startOrigin() {
  const counts = new Map()
  const server = createServer((request, response) => {
    const count = (counts.get(request.url) ?? 0) + 1
    counts.set(request.url, count)
    response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' })
    response.end(`answer ${count}`)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${server.address().port}`
  return {
    origin,
    path: (name) => `${origin}/${name}`,
    requestsTo: (url) => counts.get(new URL(url).pathname) ?? 0,
    stop: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    },
  }
}
