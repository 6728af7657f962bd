// The cache's own work per request, in µs, with no socket and no client API (issue #17): dispatch() is
// called directly with a minimal handler, through CachingAgent and through undici's own cache over a floor
// dispatcher that answers at once, and beside that floor alone. The difference is what a cache costs, a
// stable figure for profiles to move and the steadiest comparison with undici's cache the bench has.
import diagnosticsChannel from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import { interceptors } from 'undici'
import { CachingAgent } from 'undici-http-cache'
import { FloorDispatcher } from './floor.mjs'
import { interleavedRounds, median } from './harness.mjs'

const BODY = Buffer.alloc(1024, 'x')
const CACHE_CONTROL = { hit: 'max-age=3600', miss: 'max-age=3600', 'no-store': 'no-store' }
const CHANNELS = ['undici-http-cache:response', 'undici-http-cache:store', 'undici-http-cache:error']
let messages = 0
/** The subscriber of the subscribed contender: it counts, as a metrics subscriber would. */
const countMessage = () => void messages++
const REQUEST_TRACING = diagnosticsChannel.tracingChannel('undici-http-cache:request')
/** And a tracer that only counts the traces it sees begin and end. */
const TRACER = { start: countMessage, end() {}, asyncStart() {}, asyncEnd: countMessage, error() {} }

/** Requests the loop sends before it lets the event loop turn, as the throughput loops do. */
const REQUESTS_PER_TURN = 16

/**
 * µs per request for each workload: the floor alone, each cache over it, and each cache's difference from
 * the floor (the median, and the lowest and highest difference of two rounds measured next to each other).
 */
export async function measureDispatchCost({ rounds, roundSeconds }) {
  const results = []
  for (const workload of Object.keys(CACHE_CONTROL)) {
    const samples = await interleavedRounds(['floor', 'undici cache', 'CachingAgent', 'CachingAgent, subscribed'], rounds, (name) => microsecondsPerRequest({ name, workload, seconds: roundSeconds }))
    const floor = median(samples.floor)
    const result = { workload, floor }
    for (const cache of ['undici cache', 'CachingAgent', 'CachingAgent, subscribed']) {
      const costs = samples[cache].map((microseconds, round) => microseconds - samples.floor[round])
      result[cache] = { total: median(samples[cache]), cost: median(samples[cache]) - floor, minCost: Math.min(...costs), maxCost: Math.max(...costs) }
    }
    results.push(result)
    console.error(`dispatch ${workload}: floor ${floor.toFixed(2)} µs, undici cache ${result['undici cache'].total.toFixed(2)} µs, CachingAgent ${result.CachingAgent.total.toFixed(2)} µs, subscribed ${result['CachingAgent, subscribed'].total.toFixed(2)} µs`)
  }
  return results
}

async function microsecondsPerRequest({ name, workload, seconds }) {
  const floor = new FloorDispatcher({ body: BODY, headers: { 'cache-control': CACHE_CONTROL[workload], date: new Date().toUTCString() }, answer: 'at once' })
  const subscribed = name === 'CachingAgent, subscribed'
  const dispatcher = name === 'floor' ? floor : name === 'undici cache' ? floor.compose(interceptors.cache()) : new CachingAgent({ dispatcher: floor })
  // Issue #19: what the diagnostics channels cost with a subscriber on each (without one, CachingAgent's own row).
  if (subscribed) for (const channel of CHANNELS) diagnosticsChannel.subscribe(channel, countMessage)
  if (subscribed) REQUEST_TRACING.subscribe(TRACER)
  let uniqueId = 0
  const nextPath = workload === 'hit' ? () => '/hit' : () => `/${workload}/${uniqueId++}`
  if (workload === 'hit') await dispatchOnce(dispatcher, '/hit')
  await loop({ dispatcher, nextPath, seconds: Math.min(0.5, seconds) }) // warm-up, as in measure()
  const result = await loop({ dispatcher, nextPath, seconds })
  if (subscribed) for (const channel of CHANNELS) diagnosticsChannel.unsubscribe(channel, countMessage)
  if (subscribed) REQUEST_TRACING.unsubscribe(TRACER)
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
