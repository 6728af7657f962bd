// 100 concurrent identical misses against a slow origin: how many reach the origin, and how long until all
// 100 callers have their whole body, through CachingAgent beside undici's cache with its deduplicate
// interceptor and beside no cache. See bench/README.md.
//
//   npm run bench                       # writes bench/results/coalescing.md too
//   node bench/coalescing.mjs --rounds=3   # a quick look; prints, writes nothing
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { cpus } from 'node:os'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, interceptors, request } from 'undici'
import undiciPackage from 'undici/package.json' with { type: 'json' }
import { CachingAgent } from 'undici-http-cache'

const args = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')))
const ROUNDS = Number(args.rounds ?? 15)
const WRITE_RESULTS = args.rounds === undefined
const RESULTS_FILE = new URL('./results/coalescing.md', import.meta.url)
const CONCURRENT = 100
const ORIGIN_DELAY_MS = 50
const BODY = Buffer.alloc(16 * 1024, 'c')

let originRequests = 0
const origin = createServer(async (_req, res) => {
  originRequests++
  await sleep(ORIGIN_DELAY_MS)
  res.writeHead(200, { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' })
  res.end(BODY)
})
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`

// undici's compose applies the last interceptor outermost: deduplicate sees requests before the cache does.
const CONTENDERS = {
  'no cache': () => new Agent(),
  'undici cache + deduplicate': () => new Agent().compose(interceptors.cache(), interceptors.deduplicate()),
  CachingAgent: () => new CachingAgent(),
}

let round = 0
/** One burst: 100 identical GETs of a URL no contender has seen, all at once, every body read whole. */
async function burst(dispatcher) {
  const url = `${base}/burst/${round++}`
  const before = originRequests
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENT }, async () => {
      const response = await request(url, { dispatcher })
      const body = Buffer.from(await response.body.arrayBuffer())
      if (response.statusCode !== 200 || body.byteLength !== BODY.byteLength) throw new Error('wrong response')
    }),
  )
  return { ms: performance.now() - started, originRequests: originRequests - before }
}

const median = (values) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]
const samples = Object.fromEntries(Object.keys(CONTENDERS).map((name) => [name, { ms: [], originRequests: [] }]))
for (let index = 0; index < ROUNDS; index++) {
  // Interleaved, each with a fresh dispatcher, so a slow moment of the machine falls on all alike.
  for (const [name, create] of Object.entries(CONTENDERS)) {
    const dispatcher = create()
    const result = await burst(dispatcher)
    samples[name].ms.push(result.ms)
    samples[name].originRequests.push(result.originRequests)
    await dispatcher.close()
  }
}
origin.close()

const ours = median(samples.CachingAgent.ms)
const lines = Object.entries(samples).map(
  ([name, { ms, originRequests: counts }]) =>
    `| ${name} | ${median(counts)} (${Math.min(...counts)}–${Math.max(...counts)}) | ${median(ms).toFixed(1)} | ${(median(ms) / ours).toFixed(2)}x |`,
)
const table = [
  '| contender | origin requests per burst, median (range) | wall time per burst (ms), median | time vs CachingAgent |',
  '| --- | ---: | ---: | ---: |',
  ...lines,
].join('\n')
const setting =
  `Node ${process.versions.node}, undici ${undiciPackage.version}, ${cpus().length} × ${cpus()[0]?.model.trim()}; ` +
  `${CONCURRENT} concurrent GETs of one new URL per burst, origin answering 16 KiB after ${ORIGIN_DELAY_MS} ms; ` +
  `median of ${ROUNDS} bursts per contender, interleaved.`
console.log(`${setting}\n\n${table}`)

if (WRITE_RESULTS) {
  writeFileSync(
    RESULTS_FILE,
    `# Coalescing: 100 concurrent identical misses\n\nWritten by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}. ${setting}\n\n${table}\n`,
  )
  console.error(`written to ${RESULTS_FILE.pathname}`)
}
