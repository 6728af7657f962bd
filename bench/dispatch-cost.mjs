// The cache's own work per request, in µs, with no socket and no client API (issue #17): dispatch() is
// called directly with a minimal handler, through CachingAgent over a floor dispatcher that answers at once,
// and beside that floor alone. The difference is what the cache costs, a stable figure for profiles to move.
import { performance } from 'node:perf_hooks'
import { CachingAgent } from 'undici-http-cache'
import { FloorDispatcher } from './floor.mjs'
import { interleavedRounds, median } from './harness.mjs'

const BODY = Buffer.alloc(1024, 'x')
const CACHE_CONTROL = { hit: 'max-age=3600', miss: 'max-age=3600', 'no-store': 'no-store' }
/** Requests the loop sends before it lets the event loop turn, as the throughput loops do. */
const REQUESTS_PER_TURN = 16

/**
 * µs per request for each workload: the floor alone, CachingAgent over it, and the difference (the median, and
 * the lowest and highest difference of two rounds measured next to each other).
 */
export async function measureDispatchCost({ rounds, roundSeconds }) {
  const results = []
  for (const workload of Object.keys(CACHE_CONTROL)) {
    const samples = await interleavedRounds(['floor', 'CachingAgent'], rounds, (name) => microsecondsPerRequest({ name, workload, seconds: roundSeconds }))
    const costs = samples.CachingAgent.map((microseconds, round) => microseconds - samples.floor[round])
    const floor = median(samples.floor)
    const cachingAgent = median(samples.CachingAgent)
    results.push({ workload, floor, CachingAgent: cachingAgent, cost: cachingAgent - floor, minCost: Math.min(...costs), maxCost: Math.max(...costs) })
    console.error(`dispatch ${workload}: floor ${floor.toFixed(2)} µs, CachingAgent ${cachingAgent.toFixed(2)} µs`)
  }
  return results
}

async function microsecondsPerRequest({ name, workload, seconds }) {
  const floor = new FloorDispatcher({ body: BODY, headers: { 'cache-control': CACHE_CONTROL[workload], date: new Date().toUTCString() }, answer: 'at once' })
  const dispatcher = name === 'floor' ? floor : new CachingAgent({ dispatcher: floor })
  let uniqueId = 0
  const nextPath = workload === 'hit' ? () => '/hit' : () => `/${workload}/${uniqueId++}`
  if (workload === 'hit') await dispatchOnce(dispatcher, '/hit')
  await loop({ dispatcher, nextPath, seconds: Math.min(0.5, seconds) }) // warm-up, as in measure()
  const result = await loop({ dispatcher, nextPath, seconds })
  await dispatcher.close()
  return result
}

async function loop({ dispatcher, nextPath, seconds }) {
  const started = performance.now()
  const deadline = started + seconds * 1000
  let completed = 0
  while (performance.now() < deadline) {
    await dispatchOnce(dispatcher, nextPath())
    if (++completed % REQUESTS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  return ((performance.now() - started) * 1000) / completed
}

/** One GET through `dispatcher` with a handler that does nothing but wait for the end. */
function dispatchOnce(dispatcher, path) {
  return new Promise((resolve, reject) => {
    dispatcher.dispatch(
      { origin: 'http://bench.test', path, method: 'GET', headers: {} },
      {
        onRequestStart() {},
        onResponseStart() {},
        onResponseData() {},
        onResponseEnd: () => resolve(),
        onResponseError: (_controller, error) => reject(error),
      },
    )
  })
}
