import { describe, expect, it } from 'vitest'
import { entrySize, MemoryStore, type ResponseEntry } from '../lib/index.js'
import { ENTRY_VERSION } from '../lib/stores/store.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

const KIB = 1024

/** An origin whose path says how many KiB of body to send: /10 sends 10 KiB. */
function startSizedOrigin() {
  return startOrigin((request, response) => {
    response.setHeader('cache-control', 'max-age=60')
    response.end('s'.repeat(Number(request.url?.slice(1)) * KIB))
  })
}

function entryOf(bodyBytes: number): ResponseEntry {
  return {
    version: ENTRY_VERSION,
    kind: 'response',
    method: 'GET',
    url: 'http://127.0.0.1/',
    requestHeaders: {},
    status: 200,
    statusText: 'OK',
    headers: { 'content-type': 'text/plain' },
    body: new Uint8Array(bodyBytes),
    createdAt: 0,
    initialAgeSeconds: 0,
    lifetimeSeconds: 60,
    policy: {},
  }
}

describe('MemoryStore', () => {
  it('never holds more than maxSize bytes, evicting the least recently used entry first', async () => {
    const origin = await startSizedOrigin()
    const store = new MemoryStore({ maxSize: 100 * KIB, maxEntrySize: 50 * KIB })
    const agent = createTestAgent({ store })
    await get(`${origin.origin}/40`, agent) // a
    await get(`${origin.origin}/41`, agent) // b
    await get(`${origin.origin}/40`, agent) // a is used again: b is now least recently used
    await get(`${origin.origin}/42`, agent) // c: 123 KiB with a and b, over maxSize
    expect(store.size).toBeLessThanOrEqual(100 * KIB)
    expect(statusOf((await get(`${origin.origin}/40`, agent)).headers)).toBe('hit')
    expect(statusOf((await get(`${origin.origin}/42`, agent)).headers)).toBe('hit')
    expect(statusOf((await get(`${origin.origin}/41`, agent)).headers)).toBe('miss')
  })

  it('counts headers as well as the body against maxSize', () => {
    const store = new MemoryStore({ maxSize: 20 * KIB }) // room for both
    const bodyOnly = entryOf(1000)
    store.set('a', bodyOnly)
    const sizeWithSmallHeaders = store.size
    store.set('b', { ...entryOf(1000), headers: { 'x-big': 'h'.repeat(2000) } })
    expect(store.size - sizeWithSmallHeaders).toBeGreaterThan(sizeWithSmallHeaders + 1900)
  })

  it('stays within maxSize under many distinct entries', () => {
    const store = new MemoryStore({ maxSize: 64 * KIB, maxEntrySize: 8 * KIB })
    for (let index = 0; index < 1000; index++) store.set(`key-${index}`, entryOf((index % 7) * KIB))
    expect(store.size).toBeLessThanOrEqual(64 * KIB)
    expect([...store.keys()].length).toBeGreaterThan(0)
  })

  it('holds no more than maxCount entries', () => {
    const store = new MemoryStore({ maxCount: 3 })
    for (const key of ['a', 'b', 'c', 'd']) store.set(key, entryOf(10))
    expect([...store.keys()].sort()).toEqual(['b', 'c', 'd'])
  })

  it('refuses an entry over maxEntrySize and drops the older entry under that key', () => {
    const store = new MemoryStore({ maxEntrySize: 4 * KIB })
    store.set('a', entryOf(100))
    store.set('a', entryOf(8 * KIB))
    expect(store.get('a')).toBeUndefined()
    expect(store.size).toBe(0)
  })

  it('stores an entry as large as maxEntrySize, whatever it counts against maxSize', () => {
    // The cache decides what it may store by entrySize (tee.ts): the store must not refuse what it admitted.
    const store = new MemoryStore({ maxSize: 64 * KIB, maxEntrySize: 4 * KIB })
    const entry = entryOf(0)
    entry.body = new Uint8Array(4 * KIB - entrySize(entry))
    store.set('a', entry)
    expect(store.get('a')).toBe(entry)
    expect(store.size).toBeGreaterThan(entry.body.byteLength)
  })

  it('counts a small response about 2.6 KiB, so that a 32 MiB store holds twice the 6,120 it held before issue #17', () => {
    // What serving it keeps is counted too; test/memory-bounds.test.ts shows the heap holds no more.
    const store = new MemoryStore()
    const headers = { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream', date: new Date().toUTCString() }
    store.set('a', { ...entryOf(512), url: 'http://127.0.0.1:45149/e/1?size=512', headers })
    expect((32 * 1024 * KIB) / store.size).toBeGreaterThan(2 * 6_120)
  })

  it('stores an entry whose headers the user froze, as it is', () => {
    const store = new MemoryStore()
    const headers = Object.freeze({ 'content-type': 'text/plain' })
    store.set('a', { ...entryOf(10), headers })
    expect((store.get('a') as ResponseEntry).headers).toBe(headers)
  })

  it('keeps a small body that shares its buffer with a response head as bytes of its own', () => {
    // A body of 512 bytes kept as a view of its socket read kept the head's 200 bytes alive with it.
    const socketRead = Buffer.alloc(725)
    const store = new MemoryStore()
    store.set('a', { ...entryOf(0), body: socketRead.subarray(213) })
    expect((store.get('a') as ResponseEntry).body).toEqual(Buffer.alloc(512))
    expect(((store.get('a') as ResponseEntry).body as Uint8Array).buffer.byteLength).toBe(512)
  })

  it('keeps small bodies and request bodies as bytes of their own, not as views of Node\'s Buffer pool', () => {
    // Issue #16: a small Buffer.from() is a view of a pool slab (8 KiB on Node 22, 64 KiB on Node 24), which
    // an entry kept for its lifetime would keep alive whole.
    const store = new MemoryStore()
    store.set('a', { ...entryOf(0), body: Buffer.from('stored body'), requestBody: Buffer.from('{"query":1}') })
    const entry = store.get('a') as ResponseEntry
    expect(Buffer.from(entry.body as Uint8Array).toString()).toBe('stored body')
    expect(Buffer.from(entry.requestBody!).toString()).toBe('{"query":1}')
    expect((entry.body as Uint8Array).buffer.byteLength).toBe(11)
    expect(entry.requestBody!.buffer.byteLength).toBe(11)
  })

  it('deletes and clears', () => {
    const store = new MemoryStore()
    store.set('a', entryOf(1))
    store.set('b', entryOf(1))
    store.delete('a')
    expect([...store.keys()]).toEqual(['b'])
    store.clear()
    expect([...store.keys()]).toEqual([])
    expect(store.size).toBe(0)
  })
})
