import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
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
