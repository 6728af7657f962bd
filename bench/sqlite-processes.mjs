// Several processes sharing one SqliteStore file (issue #16, part 8): does a store call ever stall the
// event loop? Each process sends a mixed workload on 64 lanes through no cache, through a CachingAgent with
// a MemoryStore of its own (what caching costs without SQLite), and through a CachingAgent on one shared
// SqliteStore file, and reports event-loop delay, store-call durations and request latency.
// The origin runs in a process of its own. See bench/README.md, "Several processes on one SqliteStore".
//
//   npm run build && node bench/sqlite-processes.mjs                # 4 processes, 25 s each contender
//   node bench/sqlite-processes.mjs --processes=2 --seconds=5       # a quick look (nothing is written)
//   node bench/sqlite-processes.mjs --contenders=sqlite             # one contender only (nothing is written)
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { Agent, request } from 'undici'

const args = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')))
const PROCESSES = Number(args.processes ?? 4)
const SECONDS = Number(args.seconds ?? 25)
const LANES = 64
/** Distinct URLs: a hot few that mostly hit, and a long tail that mostly misses and is stored. */
const HOT_URLS = 200
const TAIL_URLS = 50_000
const SIZES = [1024, 8 * 1024, 32 * 1024]
const MAX_SIZE = 32 * 1024 * 1024 // evictions happen within the run
const CONTENDER_NAMES = { none: 'no cache', memory: 'MemoryStore, one per process', sqlite: 'SqliteStore, one file for all' }
const CONTENDERS = args.contenders?.split(',') ?? Object.keys(CONTENDER_NAMES)

if (args.role === 'origin') await runOrigin()
else if (args.role === 'client') await runClient(args.contender, args.origin, args.path)
else await runParent()

/**
 * Most responses are fresh for a minute; one in ten is `no-cache` with an ETag, so hits on it revalidate
 * (a 304, and the renewed entry written again); bodies of 1, 8 or 32 KiB.
 */
async function runOrigin() {
  const bodies = SIZES.map((size) => Buffer.alloc(size, 'x'))
  const server = createServer((req, res) => {
    const id = Number(new URL(req.url, 'http://origin').searchParams.get('id'))
    if (id % 10 === 0) {
      if (req.headers['if-none-match'] === `"${id}"`) return void res.writeHead(304, { etag: `"${id}"`, 'cache-control': 'no-cache' }).end()
      res.writeHead(200, { etag: `"${id}"`, 'cache-control': 'no-cache' })
    } else res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(bodies[id % SIZES.length])
  })
  server.keepAliveTimeout = 60_000
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  console.log(server.address().port)
}

/** One process: 64 lanes for SECONDS, then a JSON line of what it measured. */
async function runClient(contender, originUrl, path) {
  const { CachingAgent, MemoryStore, SqliteStore } = await import('undici-http-cache')
  const storeCalls = []
  let longestCallCpu = 0
  let store
  let dispatcher = new Agent({ connections: LANES })
  if (contender !== 'none') {
    store = contender === 'sqlite' ? new SqliteStore({ path, maxSize: MAX_SIZE }) : new MemoryStore({ maxSize: MAX_SIZE })
    // Times the synchronous part of each call, which is what holds up the event loop; and the CPU time this
    // thread spent in it, since on a loaded machine a call's wall time also counts the time it was descheduled.
    for (const method of ['get', 'set', 'delete']) {
      const call = store[method].bind(store)
      store[method] = (...callArguments) => {
        const started = performance.now()
        const cpu = process.threadCpuUsage()
        try {
          return call(...callArguments)
        } finally {
          storeCalls.push(performance.now() - started)
          const { user, system } = process.threadCpuUsage(cpu)
          longestCallCpu = Math.max(longestCallCpu, (user + system) / 1000)
        }
      }
    }
    dispatcher = new CachingAgent({ store, dispatcher })
  }
  const latencies = []
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const deadline = performance.now() + SECONDS * 1000
  let failures = 0
  const lane = async () => {
    while (performance.now() < deadline) {
      const id = Math.random() < 0.7 ? Math.floor(Math.random() * HOT_URLS) : HOT_URLS + Math.floor(Math.random() * TAIL_URLS)
      const started = performance.now()
      try {
        const response = await request(`${originUrl}/?id=${id}`, { dispatcher })
        await response.body.arrayBuffer()
      } catch {
        failures++
      }
      latencies.push(performance.now() - started)
    }
  }
  await Promise.all(Array.from({ length: LANES }, lane))
  delay.disable()
  const stats = dispatcher.cache?.stats
  await dispatcher.close()
  // The WAL before the last connection closes (which checkpoints and removes it): checkpoints that fall
  // behind, or cannot finish while other processes read, let it grow.
  const walBytes = existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0
  store?.close?.()
  console.log(
    JSON.stringify({
      requests: latencies.length,
      failures,
      requestP99: percentile(latencies, 0.99),
      loopDelayP99: delay.percentile(99) / 1e6,
      loopDelayMax: delay.max / 1e6,
      storeCalls: storeCalls.length,
      storeCallMean: storeCalls.reduce((sum, value) => sum + value, 0) / (storeCalls.length || 1),
      storeCallP99: percentile(storeCalls, 0.99),
      storeCallMax: storeCalls.reduce((max, ms) => Math.max(max, ms), 0), // not Math.max(...): too many arguments
      longestCallCpu,
      walBytes,
      hits: stats?.hits ?? 0,
      errors: stats?.errors ?? 0,
      dropped: store?.droppedWrites ?? 0, // after close(): what it could not make counts too
    }),
  )
}

function percentile(values, share) {
  if (values.length === 0) return 0
  return values.toSorted((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * share))]
}

/** Starts the origin, then each contender's processes at once on a fresh file, and prints the table. */
async function runParent() {
  const script = new URL(import.meta.url).pathname
  const origin = spawn(process.execPath, [script, '--role=origin'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise((resolve) => origin.stdout.once('data', (data) => resolve(String(data).trim())))
  const originUrl = `http://127.0.0.1:${port}`
  const rows = []
  try {
    for (const contender of CONTENDERS) {
      const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-processes-'))
      const path = join(directory, 'cache.db')
      const runs = await Promise.all(
        Array.from({ length: PROCESSES }, () => runChild(script, ['--role=client', `--contender=${contender}`, `--origin=${originUrl}`, `--path=${path}`, `--seconds=${SECONDS}`])),
      )
      rmSync(directory, { recursive: true, force: true })
      rows.push(summarise(CONTENDER_NAMES[contender], runs))
      console.error(rows.at(-1).join(' | '))
    }
  } finally {
    origin.kill()
  }
  const table = [
    '| contender | req/s (all processes) | request p99 | event-loop delay p99 (worst process) | event-loop delay max | store call mean / p99 / max | longest store call, CPU | WAL file | hits | errors | writes dropped |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n')
  const setting =
    `Node ${process.versions.node}, ${cpus().length} × ${cpus()[0]?.model.trim()}; ${PROCESSES} processes × ${LANES} lanes, ` +
    `${SECONDS} s per contender, origin in its own process; load average ${loadavg()[0].toFixed(1)} at the end (other work ` +
    'on the machine counts: compare rows within one run).'
  console.log(`${setting}\n\n${table}`)
  if (args.seconds !== undefined || args.processes !== undefined || args.contenders !== undefined) return
  const file = new URL('./results/sqlite-processes.md', import.meta.url)
  writeFileSync(file, `# Several processes on one SqliteStore\n\nWritten on ${new Date().toISOString().slice(0, 10)}. ${setting}\n\n${table}\n`)
  console.error(`written to ${file.pathname}`)
}

function runChild(script, childArguments) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...childArguments], { stdio: ['ignore', 'pipe', 'inherit'] })
    let output = ''
    child.stdout.on('data', (data) => (output += data))
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(output)) : reject(new Error(`client exited with ${code}`))))
  })
}

function summarise(name, runs) {
  const ms = (value) => `${value.toFixed(1)} ms`
  const worst = (field) => Math.max(...runs.map((run) => run[field]))
  const calls = runs.reduce((sum, run) => sum + run.storeCalls, 0)
  const mean = runs.reduce((sum, run) => sum + run.storeCallMean * run.storeCalls, 0) / (calls || 1)
  const total = (field) => runs.reduce((sum, run) => sum + run[field], 0)
  return [
    name,
    Math.round(total('requests') / SECONDS).toLocaleString('en-US'),
    ms(worst('requestP99')),
    ms(worst('loopDelayP99')),
    ms(worst('loopDelayMax')),
    calls === 0 ? '–' : `${mean.toFixed(2)} / ${worst('storeCallP99').toFixed(1)} / ${worst('storeCallMax').toFixed(1)} ms`,
    calls === 0 ? '–' : ms(worst('longestCallCpu')),
    worst('walBytes') === 0 ? '–' : `${(worst('walBytes') / 1024 / 1024).toFixed(1)} MiB`,
    total('hits').toLocaleString('en-US'),
    `${total('errors')}${total('failures') > 0 ? ` (${total('failures')} requests failed)` : ''}`,
    total('dropped').toLocaleString('en-US'),
  ]
}
