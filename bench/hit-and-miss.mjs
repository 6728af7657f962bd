// Hits and misses through CachingAgent beside undici's own cache interceptor and beside no cache, measured
// in one run and reported as ratios. See bench/README.md for how to run and read it.
//
//   npm run bench                      # the full table, written to bench/results/hit-and-miss.md
//   node bench/hit-and-miss.mjs --seconds=0.2 --rounds=1   # a quick look (nothing is written)
import { Agent, interceptors } from 'undici'
import { CachingAgent } from 'undici-http-cache'
import { benchArguments, CLIENTS, formatRate, formatRatio, interleavedMedians, markdownTable, measure, report, startBenchOrigin } from './harness.mjs'

const settings = benchArguments()
const SIZES = [1024, 64 * 1024]
const IN_FLIGHT = [1, 64]
const origin = await startBenchOrigin(SIZES)

// Each contender is built afresh for every measurement, so that no store carries entries from the last one.
const CONTENDERS = {
  'no cache': () => new Agent(),
  'undici cache': () => new Agent().compose(interceptors.cache()),
  CachingAgent: () => new CachingAgent(),
}

const rows = []
for (const workload of ['hit', 'miss']) {
  for (const size of SIZES) {
    for (const inFlight of IN_FLIGHT) {
      for (const client of Object.keys(CLIENTS)) {
        const rates = await interleavedMedians(Object.keys(CONTENDERS), settings.rounds, (name) =>
          measure({
            makeDispatcher: CONTENDERS[name],
            isCache: name !== 'no cache',
            origin,
            workload,
            size,
            client,
            inFlight,
            seconds: settings.roundSeconds,
          }),
        )
        rows.push([
          workload,
          `${size / 1024} KiB`,
          inFlight,
          client,
          formatRate(rates['no cache']),
          formatRate(rates['undici cache']),
          formatRate(rates.CachingAgent),
          formatRatio(rates.CachingAgent / rates['undici cache']),
          formatRatio(rates.CachingAgent / rates['no cache']),
        ])
        console.error(rows.at(-1).join(' '))
      }
    }
  }
}
origin.server.close()

const table = markdownTable(
  ['workload', 'body', 'in flight', 'client', 'no cache (req/s)', 'undici cache (req/s)', 'CachingAgent (req/s)', 'CachingAgent vs undici cache', 'CachingAgent vs no cache'],
  ['---', '---', '---:', '---', '---:', '---:', '---:', '---:', '---:'],
  rows,
)
report({
  file: new URL('./results/hit-and-miss.md', import.meta.url),
  title: "Hits and misses: CachingAgent beside undici's cache and no cache",
  note: 'Ratios above 1 mean CachingAgent is faster.',
  table,
  settings,
})
