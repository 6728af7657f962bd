import { Agent, type Dispatcher } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { CachingAgent } from '../lib/index.js'
import { createTestAgent } from './helpers/agent.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

interface LegacyResult {
  statusCode: number
  headers: Record<string, string>
  body: string
  completed: boolean
}

/**
 * Dispatches with the legacy handler shape (onConnect/onHeaders/onData/onComplete/onError), as the
 * undici bundled with Node does for the global fetch. `pauseEveryChunk` answers false from onData and
 * resumes on the next turn, to exercise backpressure.
 */
function dispatchLegacy(agent: CachingAgent, url: string, options: { pauseEveryChunk?: boolean; abortOnConnect?: boolean } = {}) {
  const { origin, pathname } = new URL(url)
  return new Promise<LegacyResult>((resolve, reject) => {
    const chunks: Buffer[] = []
    const result: LegacyResult = { statusCode: 0, headers: {}, body: '', completed: false }
    let resume: () => void = () => {}
    const handler = {
      onConnect(abort: (reason?: Error) => void) {
        if (options.abortOnConnect) abort(new Error('aborted by the caller'))
      },
      onHeaders(statusCode: number, rawHeaders: Buffer[], resumeFn: () => void) {
        result.statusCode = statusCode
        resume = resumeFn
        for (let index = 0; index < rawHeaders.length; index += 2) {
          expect(Buffer.isBuffer(rawHeaders[index])).toBe(true)
          result.headers[rawHeaders[index]!.toString().toLowerCase()] = rawHeaders[index + 1]!.toString()
        }
        return true
      },
      onData(chunk: Buffer) {
        chunks.push(chunk)
        if (!options.pauseEveryChunk) return true
        setImmediate(resume)
        return false
      },
      onComplete() {
        result.body = Buffer.concat(chunks).toString()
        result.completed = true
        resolve(result)
      },
      onError: reject,
    }
    agent.dispatch({ origin, path: pathname, method: 'GET' }, handler as never)
  })
}

describe('legacy handlers', () => {
  it('are served a miss and then a hit, with raw header buffers that include Cache-Status', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const miss = await dispatchLegacy(agent, origin.url)
    const hit = await dispatchLegacy(agent, origin.url, { pauseEveryChunk: true })
    expect(miss).toMatchObject({ statusCode: 200, body: 'v1', completed: true })
    expect(miss.headers['cache-status']).toMatch(/fwd=uri-miss; stored/)
    expect(hit).toMatchObject({ statusCode: 200, body: 'v1', completed: true })
    expect(hit.headers['cache-status']).toMatch(/; hit/)
    expect(origin.requests).toBe(1)
  })

  it('get onError when they abort, on a miss and on a hit', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    await expect(dispatchLegacy(agent, origin.url, { abortOnConnect: true })).rejects.toThrow('aborted by the caller')
    await dispatchLegacy(agent, origin.url)
    await expect(dispatchLegacy(agent, origin.url, { abortOnConnect: true })).rejects.toThrow('aborted by the caller')
  })

  it('of neither shape (no onRequestStart, no onConnect) get the error undici gives them without the cache', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const plain = new Agent()
    onTestFinished(() => plain.close())
    const withoutCache = await dispatchShapeless(plain, origin.url)
    const withCache = await dispatchShapeless(createTestAgent(), origin.url)
    expect(withoutCache.message).toMatch(/invalid on\w+ method/) // undici 8 and 7 name different methods
    expect(withCache).toEqual(withoutCache)
    expect(origin.requests).toBe(0)
  })
})

/**
 * Dispatches a handler with the current shape's response callbacks but no `onRequestStart` (nor `onConnect`);
 * resolves with how it failed: thrown by `dispatch()` or handed to `onResponseError`.
 */
async function dispatchShapeless(dispatcher: Dispatcher, url: string): Promise<{ how: 'thrown' | 'handed'; message: string }> {
  const { origin, pathname } = new URL(url)
  return new Promise((resolve) => {
    const handler = {
      onResponseStart() {},
      onResponseData() {},
      onResponseEnd() {},
      onResponseError: (_controller: unknown, error: Error) => resolve({ how: 'handed', message: error.message }),
    }
    try {
      dispatcher.dispatch({ origin, path: pathname, method: 'GET' }, handler as never)
    } catch (error) {
      resolve({ how: 'thrown', message: (error as Error).message })
    }
  })
}
