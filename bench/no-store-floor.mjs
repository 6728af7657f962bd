// The least a cache can do for a miss it does not store (issue #17's "0.95x of no cache" target): look the
// request up and say what it did. A stripped-down interceptor hashes the URL into a key (SHA-256, as a
// key of bounded length that holds no credential needs), looks it up in a Map, and adds a constant
// Cache-Status member to the response's headers and raw headers; nothing else (no keying rules, no
// coalescing, no policy, no bookkeeping). Measured beside no cache, an interceptor that does nothing, the same
// without Cache-Status, and CachingAgent: `no-store` responses of 1 KiB, a new URL per request, as the
// hit-and-miss bench's no-store rows.
//
//   npm run build && node bench/no-store-floor.mjs [--seconds=0.5 --rounds=5]   # prints a table, writes nothing
import { hash } from 'node:crypto'
import { Agent } from 'undici'
import { CachingAgent } from 'undici-http-cache'
import { benchArguments, formatRateRange, formatRatioRange, interleavedRounds, markdownTable, measure, ratioOfRounds, startBenchOrigin } from './harness.mjs'

const settings = benchArguments()
const origin = await startBenchOrigin([1024])

const MEMBER = 'undici-http-cache; fwd=uri-miss'
const MEMBER_BYTES = Buffer.from(MEMBER, 'latin1')
const NAME_BYTES = Buffer.from('cache-status', 'latin1')

/** The stripped-down cache: key, lookup, and (`report`) Cache-Status. Its Map stays empty, as nothing is stored. */
const lookUp = ({ report }) =>
  function lookUpAndReport(dispatch) {
    const stored = new Map()
    return (options, handler) => {
      const key = hash('sha256', `${options.method} ${options.origin}${options.path}`, 'base64url')
      if (stored.get(key) !== undefined) throw new Error('nothing is stored here')
      return dispatch(options, report === 'wrapping' ? new ReportingHandler(handler) : report === 'in place' ? new InPlaceReportingHandler(handler) : handler)
    }
  }

/**
 * Hands everything on, after adding the member to the response's headers: `withMember` says how, and which
 * controller the caller is given from then on.
 */
class ReportingHandler {
  #handler
  #controller
  constructor(handler) {
    this.#handler = handler
  }
  onRequestStart(controller, context) {
    this.#handler.onRequestStart?.(controller, context)
  }
  onResponseStart(controller, statusCode, headers, statusText) {
    const reported = this.withMember(controller, headers)
    this.#controller = reported.controller
    this.#handler.onResponseStart?.(reported.controller, statusCode, reported.headers, statusText)
  }
  onResponseData(controller, chunk) {
    this.#handler.onResponseData?.(this.#controller ?? controller, chunk)
  }
  onResponseEnd(controller, trailers) {
    this.#handler.onResponseEnd?.(this.#controller ?? controller, trailers)
  }
  onResponseError(controller, error) {
    this.#handler.onResponseError?.(this.#controller ?? controller, error)
  }

  /** A copy of the headers with the member, and a controller of its own whose raw headers hold it too. */
  withMember(controller, headers) {
    const raw = controller.rawHeaders?.concat(NAME_BYTES, MEMBER_BYTES)
    // undici's request() and fetch() read the controller's rawHeaders: they get the member too.
    const reporting = {
      pause: () => controller.pause(),
      resume: () => controller.resume(),
      abort: (reason) => controller.abort(reason),
      get paused() {
        return controller.paused
      },
      get aborted() {
        return controller.aborted
      },
      get reason() {
        return controller.reason
      },
      rawHeaders: raw,
      get rawTrailers() {
        return controller.rawTrailers
      },
    }
    return { controller: reporting, headers: { ...headers, 'cache-status': MEMBER } }
  }
}

/**
 * The member written into the header record and the raw header array undici hands over, in place, and
 * undici's own controller passed on (an experiment: it writes into undici's own objects, which the cache
 * itself must not count on).
 */
class InPlaceReportingHandler extends ReportingHandler {
  withMember(controller, headers) {
    headers['cache-status'] = MEMBER
    controller.rawHeaders?.push(NAME_BYTES, MEMBER_BYTES)
    return { controller, headers }
  }
}

const CONTENDERS = {
  'no cache': () => new Agent(),
  // An interceptor that does nothing: what composing one costs.
  'pass-through': () => new Agent().compose((dispatch) => (options, handler) => dispatch(options, handler)),
  'key and lookup': () => new Agent().compose(lookUp({ report: 'no' })),
  'key, lookup, Cache-Status': () => new Agent().compose(lookUp({ report: 'wrapping' })),
  'the same, Cache-Status in place': () => new Agent().compose(lookUp({ report: 'in place' })),
  CachingAgent: () => new CachingAgent(),
}
const STRIPPED = ['pass-through', 'key and lookup', 'key, lookup, Cache-Status', 'the same, Cache-Status in place', 'CachingAgent']

const rows = []
for (const inFlight of [1, 64]) {
  for (const client of ['request', 'fetch']) {
    const samples = await interleavedRounds(Object.keys(CONTENDERS), settings.rounds, (name) =>
      measure({ makeDispatcher: CONTENDERS[name], isCache: false, origin, workload: 'no-store', size: 1024, client, inFlight, seconds: settings.roundSeconds }),
    )
    rows.push([
      inFlight,
      client,
      ...Object.keys(CONTENDERS).map((name) => formatRateRange(samples[name])),
      ...STRIPPED.map((name) => formatRatioRange(ratioOfRounds(samples[name], samples['no cache']))),
    ])
    console.error(rows.at(-1).join(' | '))
  }
}
origin.close()
console.log(
  markdownTable(
    ['in flight', 'client', ...Object.keys(CONTENDERS).map((name) => `${name} (req/s)`), ...STRIPPED.map((name) => `${name} vs no cache`)],
    ['---:', '---', ...Object.keys(CONTENDERS).map(() => '---:'), ...STRIPPED.map(() => '---:')],
    rows,
  ),
)
