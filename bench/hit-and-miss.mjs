// Hits and misses through CachingAgent beside undici's own cache interceptor and beside no cache, measured
// in one run and reported as ratios. See bench/README.md for how to run and read it.
//
//   npm run bench                      # the full table, written to bench/results/hit-and-miss.md
//   npm run bench -- --seconds=0.2     # shorter rounds, for a quick look (nothing is written)
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { cpus } from 'node:os'
import { performance } from 'node:perf_hooks'
import { Agent, fetch, interceptors, request } from 'undici'
import undiciPackage from 'undici/package.json' with { type: 'json' }
import { CachingAgent } from 'undici-http-cache'

const args = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')))
const ROUND_SECONDS = Number(args.seconds ?? 0.5)
const ROUNDS = Number(args.rounds ?? 5)
const WRITE_RESULTS = args.seconds === undefined && args.rounds === undefined
const RESULTS_FILE = new URL('./results/hit-and-miss.md', import.meta.url)

const SIZES = [1024, 64 * 1024]
const IN_FLIGHT = [1, 64]
const CLIENTS = {
  request: async (url, dispatcher) => {
    const response = await request(url, { dispatcher })
    await response.body.arrayBuffer()
    return response.statusCode
  },
  fetch: async (url, dispatcher) => {
    const response = await fetch(url, { dispatcher })
    await response.arrayBuffer()
    return response.status
  },
}

// The origin: every response may be stored for an hour; the body size comes from the path.
const bodies = new Map(SIZES.map((size) => [size, Buffer.alloc(size, 'x')]))
let originRequests = 0
const origin = createServer((req, res) => {
  originRequests++
  const size = Number(new URL(req.url, 'http://origin').searchParams.get('size'))
  res.writeHead(200, { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' })
  res.end(bodies.get(size))
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`

// Each contender is built afresh for every measurement, so that no store carries entries from the last one.
const CONTENDERS = {
  'no cache': () => new Agent(),
  'undici cache': () => new Agent().compose(interceptors.cache()),
  CachingAgent: () => new CachingAgent(),
}

let uniqueId = 0
const WORKLOADS = {
  // One URL, stored before the clock starts: every measured request is a hit (checked below).
  hit: (size) => {
    const url = `${base}/hit?size=${size}`
    return { warmUrl: url, nextUrl: () => url }
  },
  // A new URL for every request: every one goes to the origin, and the caches store every response.
  miss: (size) => ({ nextUrl: () => `${base}/miss/${uniqueId++}?size=${size}` }),
}

/** Requests completed per second by `inFlight` loops sending `nextUrl()` for `seconds`. */
async function throughput({ send, dispatcher, nextUrl, inFlight, seconds }) {
  const deadline = performance.now() + seconds * 1000
  let completed = 0
  const loop = async () => {
    while (performance.now() < deadline) {
      const status = await send(nextUrl(), dispatcher)
      if (status !== 200) throw new Error(`status ${status}`)
      completed++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: inFlight }, loop))
  return completed / ((performance.now() - started) / 1000)
}

/** One round for one contender: a fresh dispatcher, warmed, measured; for hits, proof nothing reached the origin. */
async function measure(contender, { workload, size, client, inFlight, seconds }) {
  const dispatcher = CONTENDERS[contender]()
  const { warmUrl, nextUrl } = WORKLOADS[workload](size)
  const send = CLIENTS[client]
  if (warmUrl) await send(warmUrl, dispatcher)
  // A short unmeasured run first, so that connections are open and the JIT has seen the path.
  await throughput({ send, dispatcher, nextUrl, inFlight, seconds: Math.min(0.1, seconds) })
  const before = originRequests
  const perSecond = await throughput({ send, dispatcher, nextUrl, inFlight, seconds })
  if (workload === 'hit' && contender !== 'no cache' && originRequests !== before) {
    throw new Error(`${contender} sent ${originRequests - before} hit requests to the origin`)
  }
  await dispatcher.close()
  return perSecond
}

const median = (values) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]
const formatRate = (perSecond) => Math.round(perSecond).toLocaleString('en-US')
const formatRatio = (ratio) => `${ratio.toFixed(2)}x`

const rows = []
for (const workload of Object.keys(WORKLOADS)) {
  for (const size of SIZES) {
    for (const inFlight of IN_FLIGHT) {
      for (const client of Object.keys(CLIENTS)) {
        // Rounds alternate between contenders, so that a slow moment of the machine hits them all alike.
        const samples = Object.fromEntries(Object.keys(CONTENDERS).map((name) => [name, []]))
        for (let round = 0; round < ROUNDS; round++) {
          for (const name of Object.keys(CONTENDERS)) {
            samples[name].push(await measure(name, { workload, size, client, inFlight, seconds: ROUND_SECONDS }))
          }
        }
        const rates = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
        const row = { workload, size: `${size / 1024} KiB`, inFlight, client, rates }
        rows.push(row)
        console.error(
          `${workload} ${row.size} x${inFlight} ${client}: ` +
            Object.entries(rates).map(([name, rate]) => `${name} ${formatRate(rate)}/s`).join(', '),
        )
      }
    }
  }
}
origin.close()

const header = [
  '| workload | body | in flight | client | no cache (req/s) | undici cache (req/s) | CachingAgent (req/s) | CachingAgent vs undici cache | CachingAgent vs no cache |',
  '| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
]
const lines = rows.map(({ workload, size, inFlight, client, rates }) =>
  [
    workload,
    size,
    inFlight,
    client,
    formatRate(rates['no cache']),
    formatRate(rates['undici cache']),
    formatRate(rates.CachingAgent),
    formatRatio(rates.CachingAgent / rates['undici cache']),
    formatRatio(rates.CachingAgent / rates['no cache']),
  ].join(' | '),
)
const table = [...header, ...lines.map((line) => `| ${line} |`)].join('\n')
const setting =
  `Node ${process.versions.node}, undici ${undiciPackage.version}, ${cpus().length} × ${cpus()[0]?.model.trim()}; ` +
  `median of ${ROUNDS} rounds of ${ROUND_SECONDS} s per contender, rounds interleaved.`
console.log(`${setting}\n\n${table}`)

if (WRITE_RESULTS) {
  const date = new Date().toISOString().slice(0, 10)
  writeFileSync(
    RESULTS_FILE,
    `# Hits and misses: CachingAgent beside undici's cache and no cache\n\n` +
      `Written by \`npm run bench\` on ${date}. ${setting} Ratios above 1 mean CachingAgent is faster.\n\n${table}\n`,
  )
  console.error(`written to ${RESULTS_FILE.pathname}`)
}
