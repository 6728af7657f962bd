import { Dispatcher, request } from 'undici'
import { describe, expect, it } from 'vitest'
import { entrySize, MemoryStore, type ResponseEntry } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { MapStore } from './helpers/map-store.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

const KIB = 1024

describe('response bodies', () => {
  it('delivers a response over maxEntrySize whole and does not store it (Content-Length known)', async () => {
    const body = 'x'.repeat(64 * KIB)
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.setHeader('content-length', body.length)
      response.end(body)
    })
    const store = new MemoryStore({ maxEntrySize: 16 * KIB })
    const agent = createTestAgent({ store })
    const first = await get(origin.url, agent)
    expect(first.body).toBe(body)
    expect(first.headers['cache-status']).not.toMatch(/stored/)
    expect((await get(origin.url, agent)).body).toBe(body)
    expect(origin.requests).toBe(2)
    expect(store.size).toBe(0)
  })

  it('delivers a chunked response that grows past maxEntrySize whole and does not store it', async () => {
    const origin = await startOrigin(async (_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      for (let index = 0; index < 8; index++) response.write('y'.repeat(4 * KIB))
      response.end()
    })
    const store = new MemoryStore({ maxEntrySize: 16 * KIB })
    const agent = createTestAgent({ store })
    expect((await get(origin.url, agent)).body).toHaveLength(32 * KIB)
    expect((await get(origin.url, agent)).body).toHaveLength(32 * KIB)
    expect(origin.requests).toBe(2)
    expect(store.size).toBe(0)
  })

  it('stores a chunked response within maxEntrySize and replays it with its Content-Length', async () => {
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.write('part one, ')
      response.end('part two')
    })
    const agent = createTestAgent()
    await get(origin.url, agent)
    const hit = await get(origin.url, agent)
    expect(hit.body).toBe('part one, part two')
    expect(hit.headers['content-length']).toBe('18')
    expect(hit.headers['transfer-encoding']).toBeUndefined()
  })

  it('never stores a response whose connection breaks before the body is complete', async () => {
    let count = 0
    const origin = await startOrigin((_request, response) => {
      count++
      response.setHeader('cache-control', 'max-age=60')
      response.setHeader('content-length', 100)
      if (count === 1) {
        response.write('only part of it')
        response.socket?.destroy() // the origin dies mid-body
        return
      }
      response.end('z'.repeat(100))
    })
    const agent = createTestAgent()
    await expect(get(origin.url, agent)).rejects.toThrow()
    const second = await get(origin.url, agent)
    expect(second.body).toBe('z'.repeat(100))
    expect(statusOf(second.headers)).toBe('miss')
    expect(origin.requests).toBe(2)
  })

  it('never stores a response the caller aborted while it was streaming', async () => {
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.write('first chunk')
      // The rest never comes unless the connection is closed.
    })
    const store = new MemoryStore()
    const agent = createTestAgent({ store })
    const controller = new AbortController()
    const response = await request(origin.url, { dispatcher: agent, signal: controller.signal })
    for await (const _chunk of response.body) {
      controller.abort()
      break
    }
    const next = await request(origin.url, { dispatcher: agent, headers: { 'cache-control': 'only-if-cached' } })
    expect(next.statusCode).toBe(504)
    await next.body.dump()
    expect(store.size).toBe(0)
  })

  it('replays a stored body to a consumer that pauses, without losing or reordering bytes', async () => {
    const body = Buffer.alloc(512 * KIB)
    for (let index = 0; index < body.length; index++) body[index] = index % 251
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.end(body)
    })
    const agent = createTestAgent()
    await (await request(origin.url, { dispatcher: agent })).body.arrayBuffer()
    // A tiny highWaterMark makes undici pause the replay after almost every chunk.
    const hit = await request(origin.url, { dispatcher: agent, highWaterMark: 1 })
    const chunks: Buffer[] = []
    for await (const chunk of hit.body) {
      chunks.push(chunk as Buffer)
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(statusOf(hit.headers)).toBe('hit')
    expect(Buffer.concat(chunks).equals(body)).toBe(true)
    expect(origin.requests).toBe(1)
  })
})

/**
 * A dispatcher standing in for one that hands out body chunks as views of a larger buffer of its own (a
 * pool, a whole file read): the bytes around each chunk are someone else's.
 */
class SlicingDispatcher extends Dispatcher {
  readonly chunks: Buffer[]

  constructor(...chunks: Buffer[]) {
    super()
    this.chunks = chunks
  }

  override async close(): Promise<void> {}
  override async destroy(): Promise<void> {}

  override dispatch(_options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const controller = { paused: false, aborted: false, reason: null, rawHeaders: [], rawTrailers: [], pause() {}, resume() {}, abort() {} }
    queueMicrotask(() => {
      handler.onRequestStart?.(controller, {})
      const length = this.chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
      handler.onResponseStart?.(controller, 200, { 'cache-control': 'max-age=60', 'content-length': String(length) }, 'OK')
      for (const chunk of this.chunks) handler.onResponseData?.(controller, chunk)
      handler.onResponseEnd?.(controller, {})
    })
    return true
  }
}

describe('stored body memory', () => {
  it('keeps a body that came in one chunk as it came when little else lies behind it, and copies it otherwise', async () => {
    const tight = Buffer.alloc(1024, 't') // a buffer of its own, as undici's socket reads are
    const loose = Buffer.alloc(64 * 1024, 'l').subarray(1024, 2048) // 1 KiB of a 64 KiB buffer
    for (const [chunk, keptAsItCame] of [
      [tight, true], // no allocation per response
      [loose, false], // copied, so as not to keep the other 63 KiB alive
    ] as const) {
      const store = new MapStore()
      const agent = createTestAgent({ store, dispatcher: new SlicingDispatcher(chunk) })
      expect((await request('http://127.0.0.1:1/body', { dispatcher: agent }).then((response) => response.body.text())).length).toBe(1024)
      const [stored] = [...store.entries.values()] as ResponseEntry[]
      const body = stored!.body as Uint8Array // MapStore does not accept bodies as chunks
      expect(Buffer.from(body).equals(chunk)).toBe(true)
      expect(body.buffer === chunk.buffer).toBe(keptAsItCame)
      expect(body.buffer.byteLength).toBe(1024) // what the stored body keeps alive
      const hit = await request('http://127.0.0.1:1/body', { dispatcher: agent })
      expect(statusOf(hit.headers)).toBe('hit')
      expect(await hit.body.text()).toBe(chunk.toString())
    }
  })

  it('keeps a body that came in several chunks as those chunks in a store that accepts them, and joins it for one that does not', async () => {
    const parts = ['a', 'b', 'c', 'd'].map((letter) => letter.repeat(32 * KIB)) // more than a hit replays at once
    const origin = await startOrigin(async (_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      for (const part of parts) {
        response.write(part)
        await new Promise((resolve) => setTimeout(resolve, 5)) // each part its own socket read
      }
      response.end()
    })
    const whole = parts.join('')
    const memory = new MemoryStore()
    const map = new MapStore()
    for (const store of [memory, map]) {
      const agent = createTestAgent({ store })
      expect((await get(origin.url, agent)).body).toBe(whole)
      const [key] = await store.keys()
      const body = ((await store.get(key!)) as ResponseEntry).body
      if (store === memory) {
        expect(Array.isArray(body)).toBe(true) // no copy of the body on a miss
        expect((body as Uint8Array[]).length).toBeGreaterThan(1)
        expect(Buffer.concat(body as Uint8Array[]).toString()).toBe(whole)
      } else {
        expect(body).toBeInstanceOf(Uint8Array)
        expect(Buffer.from(body as Uint8Array).toString()).toBe(whole)
      }
      const hit = await get(origin.url, agent)
      expect([statusOf(hit.headers), hit.body, hit.headers['content-length']]).toEqual(['hit', whole, String(whole.length)])
      const inspected = await agent.cache.get(origin.url)
      expect(inspected!.body).toBeInstanceOf(Uint8Array)
      expect(Buffer.from(inspected!.body).toString()).toBe(whole)
    }
    expect(origin.requests).toBe(2)
  })

  it('copies chunks into one buffer of their size when they are views of larger buffers or many small ones', async () => {
    const pool = Buffer.alloc(256 * KIB, 'p')
    const views = [0, 1, 2].map((index) => pool.subarray(index * 64 * KIB, index * 64 * KIB + 32 * KIB)) // 96 KiB of 256 KiB
    const small = Array.from({ length: 1000 }, () => Buffer.alloc(100, 's')) // each a buffer of its own, 98 KiB in all
    for (const chunks of [views, small]) {
      const store = new MemoryStore()
      const agent = createTestAgent({ store, dispatcher: new SlicingDispatcher(...chunks) })
      const whole = Buffer.concat(chunks)
      expect(await request('http://127.0.0.1:1/body', { dispatcher: agent }).then((response) => response.body.text())).toBe(whole.toString())
      const [key] = store.keys()
      const body = (store.get(key!) as ResponseEntry).body
      expect(body).toBeInstanceOf(Uint8Array)
      expect((body as Uint8Array).buffer.byteLength).toBe(whole.byteLength) // all it keeps alive
      expect(Buffer.from(body as Uint8Array).equals(whole)).toBe(true)
    }
  })

  it('keeps a body small enough for one replay chunk as its chunks on a miss, and joins it on its first hit', async () => {
    const chunks = [Buffer.alloc(60 * KIB, 'r'), Buffer.alloc(4 * KIB, 's')] // a hit hands out 64 KiB at once
    const whole = Buffer.concat(chunks).toString()
    const store = new MemoryStore()
    const agent = createTestAgent({ store, dispatcher: new SlicingDispatcher(...chunks) })
    const read = async () => {
      const response = await request('http://127.0.0.1:1/body', { dispatcher: agent })
      const received: Buffer[] = []
      for await (const chunk of response.body) received.push(chunk as Buffer)
      return { status: statusOf(response.headers), received }
    }
    const miss = await read()
    expect(miss.status).toBe('miss')
    const [key] = store.keys()
    const stored = store.get(key!) as ResponseEntry
    // The very chunks the origin's response came in, not copies: the response may never be asked for again.
    expect(Array.isArray(stored.body) && stored.body.length === 2 && stored.body.every((chunk, index) => chunk === chunks[index])).toBe(true)

    const first = await read()
    expect(first.status).toBe('hit')
    expect(first.received).toHaveLength(1)
    expect(Buffer.concat(first.received).toString()).toBe(whole)
    const joined = (store.get(key!) as ResponseEntry).body
    expect(joined).toBeInstanceOf(Uint8Array) // the entry keeps the joined body
    expect((joined as Uint8Array).buffer.byteLength).toBe(64 * KIB)

    const second = await read()
    expect([second.status, second.received.length, Buffer.concat(second.received).toString()]).toEqual(['hit', 1, whole])
    expect((store.get(key!) as ResponseEntry).body).toBe(joined) // joined once, not per hit
  })

  it('keeps a larger body as its chunks on a miss, and copies it into chunks of 64 KiB on its first hit', async () => {
    const chunks = [Buffer.alloc(60 * KIB, 'a'), Buffer.alloc(8 * KIB, 'b'), Buffer.alloc(64 * KIB, 'c'), Buffer.alloc(20 * KIB, 'd')]
    const whole = Buffer.concat(chunks).toString()
    const store = new MemoryStore()
    const agent = createTestAgent({ store, dispatcher: new SlicingDispatcher(...chunks) })
    // dispatch() itself, as a request()'s body stream may hand on several chunks as one
    const read = () =>
      new Promise<{ status: string | undefined; sizes: number[]; body: string }>((resolve, reject) => {
        const received: Buffer[] = []
        let status: string | undefined
        agent.dispatch(
          { origin: 'http://127.0.0.1:1', path: '/large', method: 'GET', headers: {} },
          {
            onRequestStart: () => {},
            onResponseStart: (_controller, _statusCode, headers) => void (status = statusOf(headers as Record<string, string>)),
            onResponseData: (_controller, chunk) => void received.push(chunk),
            onResponseEnd: () => resolve({ status, sizes: received.map((chunk) => chunk.byteLength), body: Buffer.concat(received).toString() }),
            onResponseError: (_controller, error) => reject(error),
          },
        )
      })
    expect(await read()).toEqual({ status: 'miss', sizes: [60 * KIB, 8 * KIB, 64 * KIB, 20 * KIB], body: whole })
    const [key] = store.keys()
    expect((store.get(key!) as ResponseEntry).body).toEqual(chunks) // as they came: the response may never be asked for again

    expect(await read()).toEqual({ status: 'hit', sizes: [64 * KIB, 64 * KIB, 24 * KIB], body: whole })
    const copied = (store.get(key!) as ResponseEntry).body as Uint8Array[]
    expect(copied.map((chunk) => [chunk.byteLength, chunk.buffer.byteLength])).toEqual([
      [64 * KIB, 64 * KIB],
      [64 * KIB, 64 * KIB],
      [24 * KIB, 24 * KIB],
    ]) // buffers of their own, each
    expect(await read()).toEqual({ status: 'hit', sizes: [64 * KIB, 64 * KIB, 24 * KIB], body: whole })
    expect((store.get(key!) as ResponseEntry).body).toBe(copied) // copied once, not per hit
  })

  it('stores a body as one buffer when its chunks would take the entry past maxEntrySize', async () => {
    const chunks = [Buffer.alloc(40 * KIB, 'c'), Buffer.alloc(40 * KIB, 'c')] // each a buffer of its own
    const roomy = new MemoryStore()
    await request('http://127.0.0.1:1/body', { dispatcher: createTestAgent({ store: roomy, dispatcher: new SlicingDispatcher(...chunks) }) }).then((response) => response.body.dump())
    const [roomyKey] = roomy.keys()
    const asChunks = roomy.get(roomyKey!) as ResponseEntry
    expect(Array.isArray(asChunks.body)).toBe(true)
    // Room for the body's bytes, not for what holding it as two chunks costs besides.
    const tight = new MemoryStore({ maxEntrySize: entrySize(asChunks) - 1 })
    await request('http://127.0.0.1:1/body', { dispatcher: createTestAgent({ store: tight, dispatcher: new SlicingDispatcher(...chunks) }) }).then((response) => response.body.dump())
    const [key] = tight.keys()
    expect(key).toBeDefined() // stored, not refused
    const body = (tight.get(key!) as ResponseEntry).body
    expect(body).toBeInstanceOf(Uint8Array)
    expect(Buffer.from(body as Uint8Array).equals(Buffer.concat(chunks))).toBe(true)
  })

  it('shows a filter the whole body as one buffer when it was stored as chunks', async () => {
    const parts = ['x'.repeat(48 * KIB), 'y'.repeat(48 * KIB)] // more than a hit replays at once
    const origin = await startOrigin(async (_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.write(parts[0])
      await new Promise((resolve) => setTimeout(resolve, 5))
      response.end(parts[1])
    })
    const seen: unknown[] = []
    const store = new MemoryStore()
    const agent = createTestAgent({
      store,
      filter: (_request, response) => {
        seen.push(response.body)
        return Buffer.from(response.body).toString() === parts.join('')
      },
    })
    await get(origin.url, agent)
    const [key] = store.keys()
    expect(Array.isArray((store.get(key!) as ResponseEntry).body)).toBe(true)
    const hit = await get(origin.url, agent) // the filter is asked again before serving
    expect(statusOf(hit.headers)).toBe('hit')
    expect(seen).toHaveLength(2)
    for (const body of seen) expect(body).toBeInstanceOf(Uint8Array)
  })
})
