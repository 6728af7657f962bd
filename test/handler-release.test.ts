import { Agent, type Dispatcher } from 'undici'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { cacheInterceptor, type CacheOptions } from '../lib/index.js'
import { startOrigin, type Origin } from './helpers/origin.js'

/**
 * undici holds the handler it is given from its request object, and the caller holds the controller it is
 * handed; either can outlive the response (promoted to the old generation, it stays until a full
 * collection). So once the caller has had its response's end or error, neither the cache's handler nor the
 * controller the cache handed the caller may hold anything of the caller's: not its handler, not the
 * response (issue #17, lib/flow/released-handler.ts). Here an interceptor below the cache keeps every handler it
 * is given, as undici's dead request would, the test keeps every controller its caller was handed, and the
 * caller's handler must still be collected.
 */
describe('a response that has ended leaves nothing of its caller in the handler undici holds', () => {
  it('a response passed through and not stored (no-store)', async () => {
    const origin = await startAnsweringOrigin({ 'cache-control': 'no-store' }, 'not stored')
    const { outcome, callerCollected } = await sendOnceKeepingHandlers(origin.url)
    expect(outcome).toEqual({ status: 200, body: 'not stored', error: undefined })
    expect(callerCollected).toBe(true)
  })

  it('a miss sent on its own, with only the tee between undici and the caller (coalesce: false)', async () => {
    const origin = await startAnsweringOrigin({ 'cache-control': 'max-age=60' }, 'alone')
    const { outcome, callerCollected } = await sendOnceKeepingHandlers(origin.url, { coalesce: false })
    expect(outcome).toEqual({ status: 200, body: 'alone', error: undefined })
    expect(callerCollected).toBe(true)
  })

  it('a stored miss that led a flight others could wait on (the relay between the tee and the caller)', async () => {
    const origin = await startAnsweringOrigin({ 'cache-control': 'max-age=60' }, 'stored')
    const { outcome, callerCollected, dispatcher } = await sendOnceKeepingHandlers(origin.url)
    expect(outcome).toEqual({ status: 200, body: 'stored', error: undefined })
    expect(callerCollected).toBe(true)
    // What it stored is served: letting go of the caller lost nothing the store needed.
    const again = await dispatchOnce(dispatcher, origin.url, [])
    expect(again.outcome).toEqual({ status: 200, body: 'stored', error: undefined })
    expect(origin.requests).toBe(1)
  })

  it('a stale entry revalidated, answered 304 and served from the store, or 200 and passed through', async () => {
    let answerInFull = false
    let count = 0
    const origin = await startOrigin((request, response) => {
      if (!answerInFull && request.headers['if-none-match'] === '"v1"') return void response.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=0' }).end()
      count++
      response.writeHead(200, { etag: `"v${count}"`, 'cache-control': 'max-age=0' }).end(`v${count}`)
    })
    // coalesce: false, so that the revalidation's handler alone stands between undici and the caller.
    const { dispatcher, held } = cacheAbove({ coalesce: false })
    expect((await dispatchOnce(dispatcher, origin.url, [])).outcome.body).toBe('v1')
    const notModified = await dispatchOnce(dispatcher, origin.url, held)
    expect(notModified.outcome).toEqual({ status: 200, body: 'v1', error: undefined })
    expect(await isCollected(notModified.caller)).toBe(true)
    answerInFull = true
    const replaced = await dispatchOnce(dispatcher, origin.url, held)
    expect(replaced.outcome).toEqual({ status: 200, body: 'v2', error: undefined })
    expect(await isCollected(replaced.caller)).toBe(true)
    expect(origin.received.map(({ headers }) => headers['if-none-match'])).toEqual([undefined, '"v1"', '"v1"'])
    expect(held.length).toBe(5) // the first miss's handler; for each revalidation, the cache's handler and the caller's controller
  })

  it('a stale entry served while it is revalidated in the background (stale-while-revalidate)', async () => {
    let count = 0
    let releaseRevalidation = (): void => {}
    const origin = await startOrigin(async (_request, response) => {
      if (++count > 1) await new Promise<void>((resolve) => (releaseRevalidation = resolve))
      response.writeHead(200, { 'cache-control': 'max-age=0, stale-while-revalidate=60' }).end(`v${count}`)
    })
    onTestFinished(() => releaseRevalidation())
    const { dispatcher, held } = cacheAbove()
    await dispatchOnce(dispatcher, origin.url, [])
    const stale = await dispatchOnce(dispatcher, origin.url, held)
    expect(stale.outcome).toEqual({ status: 200, body: 'v1', error: undefined })
    await vi.waitUntil(() => origin.requests === 2) // the revalidation waits at the origin
    expect(await isCollected(stale.caller)).toBe(true)
    releaseRevalidation()
  })

  it('a response that failed half-way (the origin reset the connection)', async () => {
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '100' })
      response.write('half')
      setTimeout(() => response.destroy(), 20)
    })
    const { outcome, callerCollected } = await sendOnceKeepingHandlers(origin.url)
    expect(outcome.error).toBeInstanceOf(Error)
    expect(callerCollected).toBe(true)
  })
})

/** An origin that answers every request 200 with `headers` and `body`. */
function startAnsweringOrigin(headers: Record<string, string>, body: string): Promise<Origin> {
  return startOrigin((_request, response) => void response.writeHead(200, headers).end(body))
}

/**
 * One GET of `url` through the cache (with `options`) with a handler of our own, keeping the handler the
 * cache sent below and the controller our handler was handed; then whether our handler was collected.
 */
async function sendOnceKeepingHandlers(url: string, options?: CacheOptions) {
  const { dispatcher, held } = cacheAbove(options)
  const { caller, outcome } = await dispatchOnce(dispatcher, url, held)
  expect(held.length).toBe(2) // the cache's handler and the caller's controller
  return { outcome, callerCollected: await isCollected(caller), dispatcher }
}

/** The cache composed on an Agent, with an interceptor below it that keeps every handler the cache sends. */
function cacheAbove(options?: CacheOptions): { dispatcher: Dispatcher; held: object[] } {
  const held: object[] = []
  const keepHandlers: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (options, handler) => {
    held.push(handler)
    return dispatch(options, handler)
  }
  const agent = new Agent()
  onTestFinished(() => agent.close())
  return { dispatcher: agent.compose(keepHandlers, cacheInterceptor(options)), held }
}

interface Outcome {
  status: number | undefined
  body: string
  error: Error | undefined
}

/**
 * One GET through `dispatcher` with a handler of our own, whose controller goes to `held`; resolves once it
 * had its end or error, with a weak reference to that handler (nothing else here keeps it).
 */
async function dispatchOnce(dispatcher: Dispatcher, url: string, held: object[]): Promise<{ caller: WeakRef<object>; outcome: Outcome }> {
  let settle: (outcome: Outcome) => void = () => {}
  const ended = new Promise<Outcome>((resolve) => {
    settle = resolve
  })
  const caller = sendWith(dispatcher, url, held, settle)
  return { caller, outcome: await ended }
}

function sendWith(dispatcher: Dispatcher, url: string, held: object[], settle: (outcome: Outcome) => void): WeakRef<object> {
  const { origin, pathname } = new URL(url)
  const chunks: Buffer[] = []
  let status: number | undefined
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart: (controller) => void held.push(controller),
    onResponseStart: (_controller, statusCode) => void (status = statusCode),
    onResponseData: (_controller, chunk) => void chunks.push(chunk),
    onResponseEnd: () => settle({ status, body: Buffer.concat(chunks).toString(), error: undefined }),
    onResponseError: (_controller, error) => settle({ status, body: Buffer.concat(chunks).toString(), error }),
  }
  dispatcher.dispatch({ origin, path: pathname, method: 'GET' }, handler)
  return new WeakRef(handler)
}

/** Whether `target` is gone after full collections (a weak reference's target is kept until the current job ends). */
async function isCollected(target: WeakRef<object>): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('this test needs node --expose-gc (set in vitest.config.ts)')
  for (let attempt = 0; attempt < 5 && target.deref() !== undefined; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    gc()
  }
  return target.deref() === undefined
}
