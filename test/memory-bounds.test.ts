import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, fetch, request } from 'undici'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { MemoryStore, type CacheEntry } from '../lib/index.js'
import { MapStore } from './helpers/map-store.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { allocateShortLivedBuffers, retainedHeapBytes, settledHeapBytes } from './helpers/memory.js'

const MIB = 1024 * 1024
/**
 * What the process retains besides the store's entries after heavy traffic, whatever the traffic: undici's
 * 64 connections and their buffers, compiled code, lru-cache's own arrays. Measured at 2 to 5 MiB.
 */
const FIXED_OVERHEAD = 8 * MIB

/**
 * A loopback origin that, unlike `startOrigin`, keeps no record of the requests it gets: over 100,000
 * requests such a record would be the largest thing in the heap.
 */
async function startQuietOrigin(handle: (incoming: IncomingMessage, response: ServerResponse) => void): Promise<{ url: string }> {
  const server = createServer(handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` }
}

/** Sends `count` GETs of `url(index)` through `dispatcher`, `inFlight` at a time, reading every body. */
async function sendMany(count: number, url: (index: number) => string, dispatcher: Agent | ReturnType<typeof createTestAgent>, inFlight = 64): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const index = next++
        await (await request(url(index), { dispatcher })).body.arrayBuffer()
      }
    }),
  )
}

/**
 * Sends `count` GETs of `url(index)` as `sendMany` does, each followed by a hit on a URL stored a little
 * earlier and by small Buffers allocated and dropped, as a program does between requests.
 */
async function sendManyWithHits(
  count: number,
  url: (index: number) => string,
  { dispatcher, bodyBytes }: { dispatcher: ReturnType<typeof createTestAgent>; bodyBytes: number },
): Promise<void> {
  // Far enough back for the response to be stored, and not so far that it is evicted (at most 16 MiB back).
  const HIT_LAG = Math.min(100, Math.floor((16 * MIB) / bodyBytes))
  let next = 0
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < count) {
        const index = next++
        await (await request(url(index), { dispatcher })).body.arrayBuffer()
        if (index >= HIT_LAG) await (await request(url(index - HIT_LAG), { dispatcher })).body.arrayBuffer()
        allocateShortLivedBuffers(8 * 1024)
      }
    }),
  )
}

/**
 * Bytes retained after `count` calls of `send`, each followed by small Buffers allocated and dropped, as a
 * program allocates between requests.
 */
async function retainedAfter(count: number, send: (index: number) => Promise<void>): Promise<number> {
  const baseline = await settledHeapBytes()
  for (let index = 0; index < count; index++) {
    await send(index)
    allocateShortLivedBuffers(64 * 1024)
  }
  return (await settledHeapBytes()) - baseline
}

describe('memory bounds', () => {
  it.each([
    [100_000, 512],
    [20_000, 16 * 1024],
    [1_000, 256 * 1024], // bodies that arrive in several socket reads, stored as those chunks
  ])('%i distinct URLs of %i-byte bodies, hit again while small Buffers come and go, through a 32 MiB MemoryStore retain at most 32 MiB plus a fixed overhead', async (count, bodyBytes) => {
    const body = Buffer.alloc(bodyBytes, 'x')
    const origin = await startQuietOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=3600', 'content-type': 'text/plain' })
      response.end(body)
    })
    const store = new MemoryStore({ maxSize: 32 * MIB })
    const agent = createTestAgent({ store, dispatcher: new Agent({ connections: 64 }) })
    await sendMany(200, (index) => `${origin.url}warm/${index}`, agent)
    await agent.cache.clear()
    const baseline = await settledHeapBytes()
    await sendManyWithHits(count, (index) => `${origin.url}item/${index}?view=${index % 7}`, { dispatcher: agent, bodyBytes })
    const retained = (await settledHeapBytes()) - baseline
    expect(store.size).toBeLessThanOrEqual(32 * MIB)
    expect(agent.cache.stats.evicted).toBeGreaterThan(0) // the traffic was many times the bound
    expect(agent.cache.stats.hits).toBeGreaterThan(count / 4)
    expect(retained).toBeLessThan(32 * MIB + FIXED_OVERHEAD)
  }, 90_000)

  it.each([
    ['a few header fields', 0],
    ['many header fields', 20],
  ])('retains no more than the store counts once each entry has been served, with %s, while the program allocates small Buffers', async (_fields, extraFields) => {
    // Issue #16: a hit kept the raw form of the entry's fields as small Buffers from Node's shared pool, each
    // pinning a whole pool slab once the program had allocated past it (197 MiB held for 9 MiB counted),
    // and the store did not count that raw form at all.
    const extra = Object.fromEntries(Array.from({ length: extraFields }, (_, index) => [`x-field-${index}`, `value ${index}`]))
    const origin = await startQuietOrigin((incoming, response) => {
      response.writeHead(200, {
        'cache-control': 'max-age=3600',
        'content-type': 'text/plain; charset=utf-8',
        etag: `"${incoming.url}"`,
        'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT',
        ...extra,
      })
      response.end('x'.repeat(512))
    })
    const store = new MemoryStore({ maxSize: 64 * MIB })
    const agent = createTestAgent({ store })
    // Alternately through request() and fetch(): both read the raw form of the fields.
    const get = async (url: string, index: number): Promise<void> => {
      if (index % 2 === 0) await (await request(url, { dispatcher: agent })).body.arrayBuffer()
      else await (await fetch(url, { dispatcher: agent })).arrayBuffer()
    }
    for (let index = 0; index < 200; index++) await get(`${origin.url}warm/${index >> 1}`, index)
    await agent.cache.clear()
    // 3,000 responses stored, then each served once as a hit, through the client that did not store it.
    const retained = await retainedAfter(6_000, (index) => get(`${origin.url}item/${index % 3_000}`, index < 3_000 ? index : index + 1))
    expect(agent.cache.stats.hits).toBe(3_100)
    expect(agent.cache.stats.evicted).toBe(0)
    // What serving keeps is counted from the start. Held (Node 24, Node 22; issue #17): 8.3 and 9.0 MiB for
    // 9.9 MiB counted with a few fields, 9.9 and 10.8 MiB for 24.6 MiB counted with many.
    expect(retained).toBeLessThan(store.size + MIB)
  }, 60_000)

  it('retains no more than the store counts for POST responses kept with their request bodies, while the program allocates small Buffers', async () => {
    // Issue #16: a request body kept with its entry came from Node's shared Buffer pool (Buffer.from of a
    // string, Buffer.concat of a stream, a JSON body re-serialised), and pinned a whole pool slab.
    const origin = await startQuietOrigin((incoming, response) => {
      incoming.resume()
      response.writeHead(200, { 'cache-control': 'max-age=3600', 'content-type': 'application/json' })
      response.end('{"ok":true}')
    })
    const store = new MemoryStore({ maxSize: 64 * MIB })
    const agent = createTestAgent({ store, methods: ['GET', 'HEAD', 'POST'] })
    const post = async (index: number, body: string): Promise<void> => {
      const headers = { 'content-type': index % 2 === 0 ? 'application/json' : 'text/plain' } // re-serialised, or kept as given
      await (await request(`${origin.url}search`, { dispatcher: agent, method: 'POST', headers, body })).body.arrayBuffer()
    }
    for (let index = 0; index < 100; index++) await post(index, `{"warm":${index}}`)
    await agent.cache.clear()
    const retained = await retainedAfter(3_000, (index) => post(index, `{"query":"item ${index}","page":1}`))
    expect(agent.cache.stats.stored).toBe(3_100)
    expect(agent.cache.stats.evicted).toBe(0)
    // Measured: 2.8-3.4 MiB held for 6.5 MiB counted (before issue #16: 191 MiB on Node 24, 29 MiB on Node 22).
    expect(retained).toBeLessThan(store.size + MIB)
  }, 60_000)

  it('copies at most the store\'s maxSize of responses on their way to it at once; the rest pass through unstored', async () => {
    // Eight 6 MiB responses in flight together, their callers reading and letting go of each chunk: a 16 MiB
    // store may be sent two of them (12 MiB); copying all eight would hold 48 MiB.
    const body = Buffer.alloc(6 * MIB, 'x')
    let arrived = 0
    let allHere!: () => void
    const allArrived = new Promise<void>((resolve) => (allHere = resolve))
    const origin = await startQuietOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=3600', 'content-length': String(body.byteLength) })
      response.write(body.subarray(0, 64 * 1024))
      if (++arrived === 8) allHere()
      void allArrived.then(() => response.end(body.subarray(64 * 1024)))
    })
    const agent = createTestAgent({ store: new MemoryStore({ maxSize: 16 * MIB }), dispatcher: new Agent({ connections: 8 }) })
    const statuses = await Promise.all(
      Array.from({ length: 8 }, async (_, index) => {
        const response = await request(`${origin.url}big/${index}`, { dispatcher: agent })
        let received = 0
        for await (const chunk of response.body) received += (chunk as Buffer).byteLength
        expect(received).toBe(body.byteLength)
        return String(response.headers['cache-status'])
      }),
    )
    expect(statuses.filter((status) => status.includes('; stored'))).toHaveLength(2)
    expect(agent.cache.stats.stored).toBe(2)
    // What they took is given back: a later response has the room again.
    await (await request(`${origin.url}big/later`, { dispatcher: agent })).body.arrayBuffer()
    expect(agent.cache.stats.stored).toBe(3)
  })

  it('counts a response against maxSize until a slow store has it', async () => {
    // A store whose writes wait until released, with room for two 4 KiB responses on their way.
    let release = (): void => {}
    const released = new Promise<void>((resolve) => (release = resolve))
    onTestFinished(() => release())
    const store = Object.assign(new MapStore(), { maxSize: 10 * 1024, maxEntrySize: 8 * 1024 })
    const set = store.set.bind(store)
    store.set = ((key: string, entry: CacheEntry) => released.then(() => set(key, entry))) as never
    const origin = await startQuietOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=3600', 'content-length': '4096' }).end(Buffer.alloc(4096))
    })
    const agent = createTestAgent({ store })
    const statusOfPath = async (path: string) => {
      const response = await request(`${origin.url}${path}`, { dispatcher: agent })
      await response.body.arrayBuffer()
      return String(response.headers['cache-status'])
    }
    expect(await statusOfPath('a')).toMatch(/; stored/)
    expect(await statusOfPath('b')).toMatch(/; stored/)
    expect(await statusOfPath('c')).not.toMatch(/; stored/) // a and b are not in the store yet
    release()
    await vi.waitFor(() => expect(store.entries.size).toBe(2))
    expect(await statusOfPath('d')).toMatch(/; stored/)
  })

  it('bounds responses without Content-Length as their bytes come: one that finds no room stops being copied', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x')
    let arrived = 0
    let allHere!: () => void
    const allArrived = new Promise<void>((resolve) => (allHere = resolve))
    const origin = await startQuietOrigin(async (_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=3600' }) // chunked
      if (++arrived === 2) allHere()
      await allArrived
      for (let sent = 0; sent < 10; sent++) {
        response.write(chunk)
        await new Promise((resolve) => setImmediate(resolve))
      }
      response.end()
    })
    // Two 640 KiB bodies at once through a 1 MiB store: both cannot be copied; the one left can.
    const agent = createTestAgent({ store: new MemoryStore({ maxSize: MIB }), dispatcher: new Agent({ connections: 2 }) })
    await Promise.all([0, 1].map(async (index) => (await request(`${origin.url}chunked/${index}`, { dispatcher: agent })).body.arrayBuffer()))
    expect(agent.cache.stats.stored).toBe(1)
  })

  it('lets the event loop turn during a loop of 10,000 hits, so that nothing piles up while it runs', async () => {
    const body = Buffer.alloc(1024, 'x')
    const origin = await startQuietOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=3600' })
      response.end(body)
    })
    const agent = createTestAgent()
    await sendMany(200, () => origin.url, agent, 1)
    let turned = false
    setImmediate(() => (turned = true))
    const baseline = retainedHeapBytes()
    let retainedInLoop = 0
    for (let index = 0; index < 10_000; index++) {
      await (await request(origin.url, { dispatcher: agent })).body.arrayBuffer()
      // Measured inside the loop: what undici defers to the next turn (each body stream's teardown) is
      // still pending here if the event loop has not turned (about 4.7 KiB per hit, 46 MiB in all).
      if (index === 9_999) retainedInLoop = retainedHeapBytes() - baseline
    }
    expect(agent.cache.stats.hits).toBeGreaterThanOrEqual(10_000)
    expect(turned).toBe(true) // timers and sockets get their turn while a program loops over hits
    expect(retainedInLoop).toBeLessThan(2 * MIB)
  }, 60_000)

  it('serves a loop of hits while a test suite fakes the timers', async () => {
    const origin = await startQuietOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=3600' })
      response.end('stored')
    })
    const agent = createTestAgent()
    await (await request(origin.url, { dispatcher: agent })).body.text()
    vi.useFakeTimers() // setImmediate, setTimeout and the rest, as vitest fakes them by default
    onTestFinished(() => {
      vi.useRealTimers()
    })
    // Past the hits that start on microtasks within one turn: the others wait for the next turn, which
    // must come without the test moving its fake clock.
    for (let index = 0; index < 200; index++) {
      expect(await (await request(origin.url, { dispatcher: agent })).body.text()).toBe('stored')
    }
    expect(agent.cache.stats.hits).toBe(200)
  })

  it('retains nothing from 10,000 requests on expired entries: revalidations, refreshes behind and coalesced waiters', async () => {
    const clock = useFakeDate()
    const body = Buffer.alloc(8 * 1024, 'x')
    let version = 0
    const origin = await startQuietOrigin((incoming, response) => {
      const path = incoming.url ?? '/'
      // Half the URLs are refreshed behind stale responses; the others revalidate in the foreground.
      const cacheControl = path.includes('swr') ? 'max-age=1, stale-while-revalidate=3600' : 'max-age=1'
      response.writeHead(200, { 'cache-control': cacheControl, etag: `"${version++}"` })
      response.end(body)
    })
    const agent = createTestAgent()
    const urls = Array.from({ length: 20 }, (_, index) => `${origin.url}${index % 2 === 0 ? 'swr' : 'plain'}/${index}`)
    const round = async (): Promise<void> => {
      clock.advance(2_000) // every entry is stale now
      await sendMany(500, (index) => urls[index % urls.length]!, agent, 100) // 25 concurrent requests per URL
    }
    // Warm-up until the lazily made parts (connections, compiled code) exist, which a baseline must include.
    for (let warm = 0; warm < 10; warm++) await round()
    const baseline = retainedHeapBytes()
    for (let rounds = 0; rounds < 20; rounds++) await round() // 10,000 requests
    await vi.waitFor(() => expect(agent.cache.stats.stale).toBeGreaterThan(0))
    const retained = retainedHeapBytes() - baseline
    // The store holds 20 entries of 8 KiB whatever happened: one leaked body per request would be 78 MiB,
    // and 200 leaked bytes per request 2 MiB. (Measured: under 0.5 MiB.)
    expect(agent.cache.stats.hits).toBeGreaterThan(0) // coalesced waiters were served from what was stored
    expect(retained).toBeLessThan(2 * MIB)
  }, 60_000)
})
