// A hit and a store through CachingAgent with SqliteStore beside MemoryStore, in one run, as ratios.
// The goal (issue #7): SqliteStore hits within 2x of MemoryStore hits. See bench/README.md.
//
//   npm run bench                      # writes bench/results/stores.md
//   node bench/stores.mjs --seconds=0.2 --rounds=1   # a quick look (nothing is written)
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CachingAgent, MemoryStore, SqliteStore } from 'undici-http-cache'
import { benchArguments, formatRate, formatRatio, interleavedMedians, markdownTable, measure, report, startBenchOrigin } from './harness.mjs'

const settings = benchArguments()
const SIZES = [1024, 64 * 1024]
const origin = await startBenchOrigin(SIZES)
const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-bench-'))

// A fresh store for every measurement; the SQLite one in a new file, closed with its agent.
let files = 0
const CONTENDERS = {
  MemoryStore: () => new CachingAgent({ store: new MemoryStore({ maxSize: 1024 * 1024 * 1024 }) }),
  SqliteStore: () => {
    const store = new SqliteStore({ path: join(directory, `bench-${files++}.db`), maxSize: 1024 * 1024 * 1024 })
    const agent = new CachingAgent({ store })
    const close = agent.close.bind(agent)
    agent.close = async () => (await close(), store.close())
    return agent
  },
}

const rows = []
for (const workload of ['hit', 'miss']) {
  for (const size of SIZES) {
    const rates = await interleavedMedians(Object.keys(CONTENDERS), settings.rounds, (name) =>
      measure({ makeDispatcher: CONTENDERS[name], origin, workload, size, client: 'request', inFlight: 1, seconds: settings.roundSeconds }),
    )
    rows.push([
      workload === 'hit' ? 'hit' : 'miss (stored)',
      `${size / 1024} KiB`,
      formatRate(rates.MemoryStore),
      formatRate(rates.SqliteStore),
      formatRatio(rates.MemoryStore / rates.SqliteStore),
      `${(1e6 / rates.SqliteStore - 1e6 / rates.MemoryStore).toFixed(1)} µs`,
    ])
    console.error(rows.at(-1).join(' '))
  }
}
origin.close()
rmSync(directory, { recursive: true, force: true })

const table = markdownTable(
  ['workload', 'body', 'MemoryStore (req/s)', 'SqliteStore (req/s)', 'SqliteStore cost vs MemoryStore', 'SqliteStore extra per request'],
  ['---', '---', '---:', '---:', '---:', '---:'],
  rows,
)
report({
  file: new URL('./results/stores.md', import.meta.url),
  title: 'Stores: SqliteStore beside MemoryStore',
  note: "undici's request(), one request in flight. The cost ratio is MemoryStore's throughput over SqliteStore's: 1.00x means no extra cost.",
  table,
  settings,
})
