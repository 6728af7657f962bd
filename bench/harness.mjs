// What the benches share: their arguments, a loopback origin, throughput loops, interleaved rounds and
// the Markdown they write. See bench/README.md.
import { writeFileSync } from 'node:fs'
import { fork } from 'node:child_process'
import { cpus } from 'node:os'
import { performance } from 'node:perf_hooks'
import { fetch, request } from 'undici'
import undiciPackage from 'undici/package.json' with { type: 'json' }

/**
 * `--seconds=0.2 --rounds=1` for a quick look; without them, the full run that writes its results file.
 * `--run=2` writes a second full run beside the first (`hit-and-miss.run-2.md`), as issue #17 asks for two.
 * `--only=<text>` measures only the rows whose label contains it (a quick look: nothing is written).
 */
export function benchArguments() {
  const args = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')))
  return {
    roundSeconds: Number(args.seconds ?? 0.5),
    rounds: Number(args.rounds ?? 5),
    run: Number(args.run ?? 1),
    only: args.only,
    writeResults: args.seconds === undefined && args.rounds === undefined && args.only === undefined,
  }
}

/** Whether a row is measured in this run (`--only`). */
export const isSelected = (settings, label) => settings.only === undefined || label.includes(settings.only)

/** The results file `name` (e.g. `hit-and-miss.md`) of this run: the second run's gets `.run-2` before its extension. */
export function resultsFile(settings, name) {
  const file = settings.run === 1 ? name : name.replace(/\.(\w+)$/, `.run-${settings.run}.$1`)
  return new URL(`./results/${file}`, import.meta.url)
}

export const CLIENTS = {
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

/**
 * The origin (bench/origin.mjs) in a child process of its own, as a real origin would be; its body sizes
 * taken from `?size=`. `requestCount()` asks it how many requests it has answered.
 */
export async function startBenchOrigin(sizes) {
  const child = fork(new URL('./origin.mjs', import.meta.url), [sizes.join(',')], { stdio: 'inherit' })
  const { port } = await nextMessage(child)
  return {
    base: `http://127.0.0.1:${port}`,
    requestCount: async () => {
      child.send('count')
      return (await nextMessage(child)).requests
    },
    close: () => child.disconnect(),
  }
}

function nextMessage(child) {
  return new Promise((resolve, reject) => {
    const onExit = (code) => reject(new Error(`the origin exited with code ${code}`))
    child.once('exit', onExit)
    child.once('message', (message) => {
      child.off('exit', onExit)
      resolve(message)
    })
  })
}

/**
 * The workloads: one URL stored before the clock starts (hits); a new URL every request whose response is
 * stored (misses) or may not be (`no-store` misses). `delayMs` makes the origin wait that long before answering.
 */
export function workloads(base, { delayMs = 0 } = {}) {
  let uniqueId = 0
  const delay = delayMs > 0 ? `&delayMs=${delayMs}` : ''
  return {
    hit: (size) => {
      const url = `${base}/hit?size=${size}${delay}`
      return { warmUrl: url, nextUrl: () => url }
    },
    miss: (size) => ({ nextUrl: () => `${base}/miss/${uniqueId++}?size=${size}${delay}` }),
    'no-store': (size) => ({ nextUrl: () => `${base}/no-store/${uniqueId++}?size=${size}&store=no${delay}` }),
  }
}

/** Requests each loop sends before it lets the event loop turn. */
const REQUESTS_PER_TURN = 16
/**
 * Longest the loops go without a turn of the event loop. With 64 loops of 1 MiB hits, 16 requests each is a
 * GiB of bodies: a contender answering on microtasks alone (the floor) then ran a whole 0.5 s round in one
 * turn, undici's deferred teardown of every body piled up (2-3 GiB resident) and the kernel's page faults
 * took most of the time (floor 446 req/s against CachingAgent's 3,003, issue #17).
 */
const MAX_MS_WITHOUT_TURN = 10

/**
 * Requests completed per second by `inFlight` loops sending `nextUrl()` for `seconds`. Each loop lets the
 * event loop turn every `REQUESTS_PER_TURN` requests, and none goes on once `MAX_MS_WITHOUT_TURN` passed
 * without a turn, as a program that does anything else would: a
 * contender that answers on microtasks alone would otherwise push what it defers to the next turn (undici's
 * teardown of each response's body stream) past the measured time, and pile it up in memory meanwhile.
 */
export async function throughput({ send, dispatcher, nextUrl, inFlight, seconds }) {
  const deadline = performance.now() + seconds * 1000
  let completed = 0
  let turnedAt = performance.now()
  const loop = async () => {
    for (let sent = 1; performance.now() < deadline; sent++) {
      const status = await send(nextUrl(), dispatcher)
      if (status !== 200) throw new Error(`status ${status}`)
      completed++
      if (sent % REQUESTS_PER_TURN === 0 || performance.now() - turnedAt > MAX_MS_WITHOUT_TURN) {
        await new Promise((resolve) => setImmediate(resolve))
        turnedAt = performance.now()
      }
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: inFlight }, loop))
  return completed / ((performance.now() - started) / 1000)
}

const WARM_UP_SECONDS = 0.5

/**
 * One round for one contender: a fresh dispatcher, warmed, measured; for hits, proof that nothing reached
 * the origin (unless the contender is no cache at all).
 */
export async function measure({ makeDispatcher, origin, workload, size, delayMs, client, inFlight, seconds, isCache = true }) {
  const dispatcher = makeDispatcher()
  const { warmUrl, nextUrl } = workloads(origin.base, { delayMs })[workload](size)
  const send = CLIENTS[client]
  if (warmUrl) await send(warmUrl, dispatcher)
  // An unmeasured run first, as long as the measured one (at most 0.5 s): connections open, the JIT has seen
  // the path, and the collector has sized the heap for this contender's traffic rather than the last one's.
  // After 0.1 s undici's cache served 1 MiB hits with 64 in flight at ~1,000/s; after 0.5 s, at 2,000-5,000/s.
  await throughput({ send, dispatcher, nextUrl, inFlight, seconds: Math.min(WARM_UP_SECONDS, seconds) })
  const before = await origin.requestCount()
  const perSecond = await throughput({ send, dispatcher, nextUrl, inFlight, seconds })
  const sent = (await origin.requestCount()) - before
  if (workload === 'hit' && isCache && sent !== 0) throw new Error(`a cache sent ${sent} hit requests to the origin`)
  await dispatcher.close()
  return perSecond
}

/**
 * Every round's figure for each contender. The rounds alternate between contenders, and each round starts one
 * contender further on (A, B, C; B, C, A; C, A, B; …): what a contender leaves behind (a heap the collector
 * sized for its traffic, garbage still to collect) would otherwise always help or hurt the same successor
 * (bench/README.md, "Fourth look").
 */
export async function interleavedRounds(contenderNames, rounds, measureOne) {
  const samples = Object.fromEntries(contenderNames.map((name) => [name, []]))
  for (let round = 0; round < rounds; round++) {
    const start = round % contenderNames.length
    for (const name of [...contenderNames.slice(start), ...contenderNames.slice(0, start)]) samples[name].push(await measureOne(name))
  }
  return samples
}

/** The median of each contender's interleaved rounds. */
export async function interleavedMedians(contenderNames, rounds, measureOne) {
  const samples = await interleavedRounds(contenderNames, rounds, measureOne)
  return Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]))
}

/**
 * The ratio of two contenders' medians, and the lowest and highest ratio of their figures round by round
 * (round i of one over round i of the other, measured next to each other): how far a single round strays.
 */
export function ratioOfRounds(numerators, denominators) {
  const perRound = numerators.map((value, round) => value / denominators[round])
  return { ratio: median(numerators) / median(denominators), min: Math.min(...perRound), max: Math.max(...perRound) }
}

export const median = (values) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]
/** "12,345 (11,900–12,700)": the median and the rounds' range. */
export const formatRateRange = (values) => `${formatRate(median(values))} (${formatRate(Math.min(...values))}–${formatRate(Math.max(...values))})`
/** "1.12x (1.05–1.20)": a ratio of medians and the range of the per-round ratios. */
export const formatRatioRange = ({ ratio, min, max }) => `${formatRatio(ratio)} (${min.toFixed(2)}–${max.toFixed(2)})`
/** "64 KiB", "1 MiB". */
export const formatSize = (size) => (size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`)
export const formatRate = (perSecond) => Math.round(perSecond).toLocaleString('en-US')
export const formatRatio = (ratio) => `${ratio.toFixed(2)}x`

/** The machine and the method, said once above every table. */
export function settingLine({ rounds, roundSeconds }) {
  return (
    `Node ${process.versions.node}, undici ${undiciPackage.version}, ${cpus().length} × ${cpus()[0]?.model.trim()}; ` +
    `median of ${rounds} rounds of ${roundSeconds} s per contender, rounds interleaved in rotating order.`
  )
}

/** Prints the table, and on a full run writes it to `file` under `title`. */
export function report({ file, title, note, table, settings }) {
  const setting = settingLine(settings)
  console.log(`${setting}\n\n${table}`)
  if (!settings.writeResults) return
  const date = new Date().toISOString().slice(0, 10)
  writeFileSync(file, `# ${title}\n\nWritten by \`npm run bench\` on ${date}. ${setting} ${note}\n\n${table}\n`)
  console.error(`written to ${file.pathname}`)
}

/** A Markdown table from a header row and data rows (arrays of cells). */
export function markdownTable(header, alignments, rows) {
  return [`| ${header.join(' | ')} |`, `| ${alignments.join(' | ')} |`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n')
}
