// The least a cache can do for a miss it stores (issue #17's stored-miss rows, and "every miss at least 0.97x
// no cache" against an origin that answers in 1 ms). A stripped-down interceptor keys the request (SHA-256 of
// method and URL), looks it up in a Map, adds a constant Cache-Status member to the head undici hands over (in
// place, undici's own controller passed on, as CachingAgent does with its own Agent), and keeps what a later
// hit would need: the status, a copy of the header record (the caller holds undici's), and the body's chunks,
// in a Map of at most 10,000 entries, the oldest dropped first. Nothing else: no freshness rules, no Vary, no
// size bounds, no coalescing, no revalidation. Measured beside no cache, undici's own cache and CachingAgent:
// a new URL per request, 1 KiB bodies with `Cache-Control: max-age=3600`, from the bench's origin in its own
// process, answering at once or after 1 ms.
//
//   npm run build && node bench/stored-miss-floor.mjs [--seconds=0.5 --rounds=5]   # prints a table, writes nothing
import { hash } from 'node:crypto'
import { Agent, interceptors } from 'undici'
import { CachingAgent } from 'undici-http-cache'
import { benchArguments, formatRateRange, formatRatioRange, interleavedRounds, markdownTable, measure, ratioOfRounds, startBenchOrigin } from './harness.mjs'

const settings = benchArguments()
const origin = await startBenchOrigin([1024])

const MEMBER = 'undici-http-cache; fwd=uri-miss; stored'
const MEMBER_BYTES = Buffer.from(MEMBER, 'latin1')
const NAME_BYTES = Buffer.from('cache-status', 'latin1')
const MAX_ENTRIES = 10_000

/** The stripped-down storing cache: key, lookup, Cache-Status in place, and the response kept whole. */
function keyLookUpAndStore(dispatch) {
  const stored = new Map()
  return (options, handler) => {
    const key = hash('sha256', `${options.method} ${options.origin}${options.path}`, 'base64url')
    if (stored.get(key) !== undefined) throw new Error('every URL is new here: nothing is ever found')
    return dispatch(options, new StoringHandler(handler, key, stored))
  }
}

class StoringHandler {
  #handler
  #key
  #stored
  #entry
  constructor(handler, key, stored) {
    this.#handler = handler
    this.#key = key
    this.#stored = stored
  }
  onRequestStart(controller, context) {
    this.#handler.onRequestStart?.(controller, context)
  }
  onResponseStart(controller, statusCode, headers, statusText) {
    if (statusCode === 200) this.#entry = { statusCode, statusText, headers: { ...headers }, chunks: [], storedAt: Date.now() }
    headers['cache-status'] = MEMBER
    controller.rawHeaders?.push(NAME_BYTES, MEMBER_BYTES)
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusText)
  }
  onResponseData(controller, chunk) {
    this.#entry?.chunks.push(chunk)
    this.#handler.onResponseData?.(controller, chunk)
  }
  onResponseEnd(controller, trailers) {
    if (this.#entry !== undefined) {
      if (this.#stored.size >= MAX_ENTRIES) this.#stored.delete(this.#stored.keys().next().value)
      this.#stored.set(this.#key, this.#entry)
    }
    this.#handler.onResponseEnd?.(controller, trailers)
  }
  onResponseError(controller, error) {
    this.#handler.onResponseError?.(controller, error)
  }
}

const CONTENDERS = {
  'no cache': () => new Agent(),
  'key, lookup, store': () => new Agent().compose(keyLookUpAndStore),
  'undici cache': () => new Agent().compose(interceptors.cache()),
  CachingAgent: () => new CachingAgent(),
}
const COMPARED = ['key, lookup, store', 'undici cache', 'CachingAgent']

const rows = []
for (const delayMs of [0, 1]) {
  for (const inFlight of [1, 64]) {
    for (const client of ['request', 'fetch']) {
      const samples = await interleavedRounds(Object.keys(CONTENDERS), settings.rounds, (name) =>
        measure({ makeDispatcher: CONTENDERS[name], origin, workload: 'miss', size: 1024, delayMs, client, inFlight, seconds: settings.roundSeconds }),
      )
      rows.push([
        delayMs === 0 ? 'at once' : `${delayMs} ms`,
        inFlight,
        client,
        ...Object.keys(CONTENDERS).map((name) => formatRateRange(samples[name])),
        ...COMPARED.map((name) => formatRatioRange(ratioOfRounds(samples[name], samples['no cache']))),
        formatRatioRange(ratioOfRounds(samples.CachingAgent, samples['undici cache'])),
      ])
      console.error(rows.at(-1).join(' | '))
    }
  }
}
origin.close()
console.log(
  markdownTable(
    [
      'origin answers',
      'in flight',
      'client',
      ...Object.keys(CONTENDERS).map((name) => `${name} (req/s)`),
      ...COMPARED.map((name) => `${name} vs no cache`),
      'CachingAgent vs undici cache',
    ],
    ['---', '---:', '---', ...Object.keys(CONTENDERS).map(() => '---:'), ...COMPARED.map(() => '---:'), '---:'],
    rows,
  ),
)
