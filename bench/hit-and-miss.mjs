// Hits and misses through CachingAgent beside undici's own cache interceptor, beside no cache, and (for
// hits) beside the floor: a dispatcher that only replays bytes from memory. Measured in one run and
// reported as ratios, as a Markdown table and an SVG chart. See bench/README.md for how to run and read it.
//
//   npm run bench                                          # writes bench/results/hit-and-miss.{md,svg}
//   node bench/hit-and-miss.mjs --seconds=0.2 --rounds=1   # a quick look (nothing is written)
//   node bench/hit-and-miss.mjs --only='hit 1 MiB x64'     # only the rows whose label holds that text (nothing is written)
//   npm run build && node bench/hit-and-miss.mjs --run=2  # a second full run, written beside the first (hit-and-miss.run-2.md)
import { writeFileSync } from 'node:fs'
import { Agent, interceptors } from 'undici'
import { CachingAgent } from 'undici-http-cache'
import { ratioChart } from './chart.mjs'
import { measureDispatchCost } from './dispatch-cost.mjs'
import { FloorDispatcher } from './floor.mjs'
import {
  benchArguments,
  CLIENTS,
  formatRateRange,
  formatSize,
  formatRatio,
  formatRatioRange,
  interleavedRounds,
  isSelected,
  markdownTable,
  measure,
  median,
  ratioOfRounds,
  report,
  resultsFile,
  startBenchOrigin,
} from './harness.mjs'

const settings = benchArguments()
const SIZES = [1024, 64 * 1024, 1024 * 1024]
const IN_FLIGHT = [1, 64]
const origin = await startBenchOrigin(SIZES)

// Each contender is built afresh for every measurement, so that no store carries entries from the last one.
const CONTENDERS = {
  'no cache': () => new Agent(),
  'undici cache': () => new Agent().compose(interceptors.cache()),
  // The fields the origin sends that a replay keeps (hop-by-hop ones go): what a hit has besides Age and Cache-Status.
  floor: (size) =>
    new FloorDispatcher({
      body: Buffer.alloc(size, 'x'),
      headers: { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream', date: new Date().toUTCString() },
    }),
  CachingAgent: () => new CachingAgent(),
}
// The floor answers without an origin: it is the bound for hits only.
const contendersFor = (workload) => Object.keys(CONTENDERS).filter((name) => workload === 'hit' || name !== 'floor')

/** The rows: each workload with its bodies, and the origin's latency (0: it answers at once). */
const ROW_GROUPS = [
  { workload: 'hit', sizes: SIZES, delayMs: 0 },
  { workload: 'miss', sizes: SIZES, delayMs: 0 },
  { workload: 'no-store', sizes: [1024, 64 * 1024], delayMs: 0 },
  { workload: 'miss', sizes: [1024], delayMs: 1 },
  { workload: 'no-store', sizes: [1024], delayMs: 1 },
]
const WORKLOAD_NAMES = { hit: 'hit', miss: 'miss (stored)', 'no-store': 'miss (no-store)' }

/**
 * Issue #17's targets for a row: CachingAgent's throughput over a contender's, at least `minimum`. Hits: at
 * least undici's cache, and 0.8x the floor (within 1.25x of its cost). Stored misses: at least undici's
 * cache. No-store misses: 0.95x no cache. Every miss against the 1 ms origin: 0.97x no cache.
 */
function targetsFor({ workload, delayMs }) {
  if (workload === 'hit') return [{ against: 'undici cache', minimum: 1 }, { against: 'floor', minimum: 0.8 }]
  const noCache = { against: 'no cache', minimum: delayMs > 0 ? 0.97 : 0.95 }
  if (workload === 'no-store') return [noCache]
  return delayMs > 0 ? [{ against: 'undici cache', minimum: 1 }, noCache] : [{ against: 'undici cache', minimum: 1 }]
}

/** "met: ≥ 1.00x undici cache" or "MISSED: ≥ 0.95x no cache (0.81x)", one per target, from the medians. */
function describeTargets(rates, targets) {
  return targets
    .map(({ against, minimum }) => {
      const ratio = rates.CachingAgent / rates[against]
      return ratio >= minimum ? `met: ≥ ${formatRatio(minimum)} ${against}` : `**MISSED**: ≥ ${formatRatio(minimum)} ${against} (${formatRatio(ratio)})`
    })
    .join('; ')
}

const rows = []
const chartRows = []
for (const { workload, sizes, delayMs } of ROW_GROUPS) {
  for (const size of sizes) {
    for (const inFlight of IN_FLIGHT) {
      for (const client of Object.keys(CLIENTS)) {
        const originLatency = delayMs === 0 ? 'at once' : `${delayMs} ms`
        const label = `${WORKLOAD_NAMES[workload]}${delayMs === 0 ? '' : ` (${originLatency})`} ${formatSize(size)} x${inFlight} ${client}`
        if (!isSelected(settings, label)) continue
        const samples = await interleavedRounds(contendersFor(workload), settings.rounds, (name) =>
          measure({
            makeDispatcher: () => CONTENDERS[name](size),
            isCache: name !== 'no cache' && name !== 'floor',
            origin,
            workload,
            size,
            delayMs,
            client,
            inFlight,
            seconds: settings.roundSeconds,
          }),
        )
        const rates = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
        const against = (name) => (samples[name] === undefined ? '–' : formatRatioRange(ratioOfRounds(samples.CachingAgent, samples[name])))
        rows.push([
          WORKLOAD_NAMES[workload],
          originLatency,
          formatSize(size),
          inFlight,
          client,
          formatRateRange(samples['no cache']),
          formatRateRange(samples['undici cache']),
          samples.floor === undefined ? '–' : formatRateRange(samples.floor),
          formatRateRange(samples.CachingAgent),
          against('undici cache'),
          against('no cache'),
          against('floor'),
          formatMicroseconds(1 / rates.CachingAgent - 1 / (workload === 'hit' ? rates['undici cache'] : rates['no cache'])),
          describeTargets(rates, targetsFor({ workload, delayMs })),
        ])
        for (const { against, minimum } of targetsFor({ workload, delayMs })) {
          chartRows.push({ label: `${label} vs ${against}`, ratio: rates.CachingAgent / rates[against], target: minimum })
        }
        console.error(`${label}: ${rows.at(-1).slice(5).join(' | ')}`)
      }
    }
  }
}
origin.close()
const dispatchCosts = isSelected(settings, 'dispatch') ? await measureDispatchCost(settings) : []

/** Seconds per request as signed microseconds ("−12.3 µs": CachingAgent takes that much less). */
function formatMicroseconds(seconds) {
  const micro = seconds * 1e6
  return `${micro < 0 ? '−' : '+'}${Math.abs(micro).toFixed(1)} µs`
}

const table = markdownTable(
  [
    'workload',
    'origin answers',
    'body',
    'in flight',
    'client',
    'no cache (req/s)',
    'undici cache (req/s)',
    'floor (req/s)',
    'CachingAgent (req/s)',
    'CachingAgent vs undici cache',
    'CachingAgent vs no cache',
    'CachingAgent vs floor',
    'time per request beyond undici cache (hit) or no cache (miss)',
    'targets (issue #17)',
  ],
  ['---', '---', '---', '---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---'],
  rows,
)
/** A cache's own work per request as "median (lowest to highest)", in µs. */
const formatCost = ({ cost, minCost, maxCost }) => `${cost.toFixed(2)} (${minCost.toFixed(2)} to ${maxCost.toFixed(2)})`
const dispatchTable = markdownTable(
  [
    'workload (1 KiB, dispatch() directly)',
    'floor alone (µs per request)',
    'undici cache over the floor (µs per request)',
    'CachingAgent over the floor (µs per request)',
    "undici cache's own work (µs per request)",
    "CachingAgent's own work (µs per request)",
    "CachingAgent's own work with a subscriber on each diagnostics channel (µs per request)",
  ],
  ['---', '---:', '---:', '---:', '---:', '---:', '---:'],
  dispatchCosts.map(({ workload, floor, 'undici cache': undiciCache, CachingAgent, 'CachingAgent, subscribed': subscribed }) => [
    WORKLOAD_NAMES[workload],
    floor.toFixed(2),
    undiciCache.total.toFixed(2),
    CachingAgent.total.toFixed(2),
    formatCost(undiciCache),
    formatCost(CachingAgent),
    formatCost(subscribed),
  ]),
)
const dispatchSection =
  '## Dispatch level\n\n' +
  "dispatch() called directly with a handler that only waits for the end, one request at a time, through each cache " +
  'over a floor that answers inside dispatch(), beside that floor alone: no socket, no client API. The last two columns ' +
  "are the differences, each cache's own work per request (a hit never reaches the floor, so there it is the replay's " +
  "cost over the floor's).\n\n" +
  dispatchTable
report({
  file: resultsFile(settings, 'hit-and-miss.md'),
  title: "Hits and misses: CachingAgent beside undici's cache, no cache and the floor",
  note:
    'Each figure is the median of the rounds, with the lowest and highest round in brackets; each ratio is the ratio of the medians, with the lowest and highest ratio of two rounds measured next to each other in brackets. ' +
    'Throughput ratios above 1 mean CachingAgent is faster. "CachingAgent vs floor" is CachingAgent\'s hit throughput over ' +
    "the floor's, a replay with no cache logic at all (1.00x would be a hit that costs nothing beyond it). " +
    'The time column gives a comparison as time: what a request through CachingAgent takes beyond one through undici cache (hits) or no cache (misses), with one request in flight the latency added, with 64 the CPU time per request. ' +
    'Targets (issue #17), a throughput ratio each: a hit at least 1.00x undici cache and 0.80x the floor; a stored miss at least ' +
    '1.00x undici cache; a no-store miss at least 0.95x no cache; every miss against the 1 ms origin at least 0.97x no cache. ' +
    'The chart, a bar per target, green where met: [hit-and-miss.svg](hit-and-miss.svg).',
  table: dispatchCosts.length === 0 ? table : `${table}\n\n${dispatchSection}`,
  settings,
})
if (settings.writeResults) {
  writeFileSync(
    resultsFile(settings, 'hit-and-miss.svg'),
    ratioChart(chartRows, { title: 'CachingAgent against each target of issue #17 (throughput ratio; tick: target)' }),
  )
}
