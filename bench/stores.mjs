// A hit and a stored miss through CachingAgent with SqliteStore beside MemoryStore, and beside undici's own
// cache with its SqliteCacheStore, in one run, as ratios. Goals: SqliteStore hits within 2x of MemoryStore
// hits (issue #7); SqliteStore at least as fast as undici's SqliteCacheStore (issue #17). See bench/README.md.
//
//   npm run bench                      # writes bench/results/stores.md
//   node bench/stores.mjs --seconds=0.2 --rounds=1   # a quick look (nothing is written)
//   node bench/stores.mjs --only='miss (stored) 1 KiB'   # only the rows whose label holds that text
//   npm run build && node bench/stores.mjs --run=2   # a second full run, written beside the first (stores.run-2.md)
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, cacheStores, interceptors } from 'undici'
import { CachingAgent, MemoryStore, SqliteStore } from 'undici-http-cache'
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
const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-bench-'))

// A fresh store for every measurement; the SQLite ones in a new file, closed with their dispatcher.
let files = 0
/** Responses SqliteStore did not store in the current row (refused, dropped, failed), over all its rounds. */
let notStored = 0
const nextFile = () => join(directory, `bench-${files++}.db`)
const CONTENDERS = {
  MemoryStore: () => new CachingAgent({ store: new MemoryStore({ maxSize: 1024 * 1024 * 1024 }) }),
  SqliteStore: () => {
    const store = new SqliteStore({ path: nextFile(), maxSize: 1024 * 1024 * 1024 })
    const agent = closingStore(new CachingAgent({ store }), store)
    // A write refused or dropped is one the contender did not pay for: counted, and shown beside its row.
    const close = agent.close
    agent.close = (callback) => (callback ? close(callback) : close().then(() => (notStored += agent.cache.stats.errors + store.droppedWrites)))
    return agent
  },
  'undici SqliteCacheStore': () => {
    const store = new cacheStores.SqliteCacheStore({ location: nextFile() })
    return closingStore(new Agent().compose(interceptors.cache({ store })), store)
  },
}

/** `dispatcher`, whose close() closes `store` too. */
function closingStore(dispatcher, store) {
  const close = dispatcher.close.bind(dispatcher)
  // undici's close() without a callback calls close(callback) on the same object: pass that call through.
  dispatcher.close = (callback) => (callback ? close(callback) : close().then(() => store.close()))
  return dispatcher
}

const rows = []
for (const workload of ['hit', 'miss']) {
  for (const size of SIZES) {
    for (const inFlight of IN_FLIGHT) {
      for (const client of Object.keys(CLIENTS)) {
        const label = `${workload === 'hit' ? 'hit' : 'miss (stored)'} ${formatSize(size)} x${inFlight} ${client}`
        if (!isSelected(settings, label)) continue
        notStored = 0
        const samples = await interleavedRounds(Object.keys(CONTENDERS), settings.rounds, (name) =>
          measure({ makeDispatcher: CONTENDERS[name], origin, workload, size, client, inFlight, seconds: settings.roundSeconds }),
        )
        const rates = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
        rows.push([
          workload === 'hit' ? 'hit' : 'miss (stored)',
          formatSize(size),
          inFlight,
          client,
          formatRateRange(samples.MemoryStore),
          formatRateRange(samples.SqliteStore),
          formatRateRange(samples['undici SqliteCacheStore']),
          formatRatioRange(ratioOfRounds(samples.SqliteStore, samples['undici SqliteCacheStore'])),
          // Issue #17: SqliteStore at least as fast as undici's SqliteCacheStore in every row.
          rates.SqliteStore >= rates['undici SqliteCacheStore'] ? 'met' : '**MISSED**',
          formatRatio(rates.MemoryStore / rates.SqliteStore),
          `${(1e6 / rates.SqliteStore - 1e6 / rates.MemoryStore).toFixed(1)} µs`,
          notStored,
        ])
        console.error(rows.at(-1).join(' '))
      }
    }
  }
}
origin.close()
rmSync(directory, { recursive: true, force: true })

const table = markdownTable(
  [
    'workload',
    'body',
    'in flight',
    'client',
    'MemoryStore (req/s)',
    'SqliteStore (req/s)',
    "undici's SqliteCacheStore (req/s)",
    "SqliteStore vs undici's SqliteCacheStore",
    'target ≥ 1.00x (issue #17)',
    'SqliteStore cost vs MemoryStore',
    'SqliteStore extra per request',
    'SqliteStore writes not stored',
  ],
  ['---', '---', '---:', '---', '---:', '---:', '---:', '---:', '---', '---:', '---:', '---:'],
  rows,
)
report({
  file: resultsFile(settings, 'stores.md'),
  title: "Stores: SqliteStore beside MemoryStore and undici's SqliteCacheStore",
  note:
    'Each figure is the median of the rounds, with the lowest and highest round in brackets; the ratio to undici\'s store is the ratio of the medians, with the lowest and highest ratio of two rounds measured next to each other in brackets. ' +
    "MemoryStore and SqliteStore through CachingAgent; undici's SqliteCacheStore through undici's cache interceptor. " +
    "\"SqliteStore vs undici's SqliteCacheStore\" is a throughput ratio: above 1 SqliteStore is faster. " +
    "The cost ratio is MemoryStore's throughput over SqliteStore's: 1.00x means no extra cost. " +
    '"Writes not stored" counts the responses SqliteStore refused or dropped over all rounds of the row (stats.errors + droppedWrites): a row with many is faster than it should be.',
  table,
  settings,
})
