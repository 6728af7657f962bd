// Instructions per request in the client's process, counted by valgrind's callgrind rather than timed
// (issue #17): on a shared machine whose speed moved 2x within minutes, timed A/B runs could not resolve a
// change of a few per cent. Each contender sends a fixed number of requests
// through undici's request() or fetch(), 64 in flight, to the bench's origin in a process of its own (not
// counted); the count of a run with no measured requests is taken away, so start-up and warm-up are not
// counted either. V8 runs with --predictable --single-threaded, so the collector and the compiler do the same
// work in the same order each time: the same build repeats within about 1% with the same settings. But the
// figure per request moves with --requests more than between builds (no cache: 327k at 5,000, 277k at 8,000,
// 290k at 12,000): compilation and major collections come in lumps, counted whole in whichever window they
// fall. Compare builds only at the same settings, and at more than one --requests (bench/README, "Ninth look").
//
//   npm run build && node bench/instructions.mjs [--workload=no-store|miss|hit] [--client=request|fetch] [--requests=5000]
//
// Slow (valgrind runs the client ~50x slower: about three minutes a contender, ten for a workload) and prints, writes nothing.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Agent, interceptors } from 'undici'
import { CLIENTS, startBenchOrigin, workloads } from './harness.mjs'

const args = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')))
const workload = args.workload ?? 'no-store'
const client = args.client ?? 'request'
const size = Number(args.size ?? 1024)
const IN_FLIGHT = 64
const WARM_UP_REQUESTS = 2000

const CONTENDERS = {
  'no cache': () => new Agent(),
  'undici cache': () => new Agent().compose(interceptors.cache()),
  CachingAgent: async () => new (await import('undici-http-cache')).CachingAgent(),
}

if (args.contender !== undefined) await sendAndExit(Number(args.requests))
else countAll(Number(args.requests ?? 5000))

/** Runs each contender under callgrind twice (with and without the measured requests) and prints the difference. */
function countAll(requests) {
  if (spawnSync('valgrind', ['--version']).error) {
    console.log('valgrind is not installed: nothing to count (Debian: apt-get install valgrind)')
    return
  }
  const perRequest = {}
  for (const contender of Object.keys(CONTENDERS)) {
    const counted = (measured) => instructions([`--contender=${contender}`, `--requests=${measured}`, `--workload=${workload}`, `--client=${client}`, `--size=${size}`])
    perRequest[contender] = Math.round((counted(requests) - counted(0)) / requests)
    console.log(`${workload} ${size} B x${IN_FLIGHT} ${client}, ${contender}: ${perRequest[contender].toLocaleString('en-US')} instructions per request`)
  }
  const beyond = (against) => `${(perRequest.CachingAgent - perRequest[against]).toLocaleString('en-US')} (${((perRequest.CachingAgent / perRequest[against] - 1) * 100).toFixed(1)}%)`
  console.log(`CachingAgent beyond no cache: ${beyond('no cache')}; beyond undici's cache: ${beyond('undici cache')}`)
}

/** The instructions callgrind counted in one run of this script as a client (its origin runs uncounted). */
function instructions(clientArguments) {
  const node = process.execPath
  const script = fileURLToPath(import.meta.url)
  const valgrind = ['--tool=callgrind', '--callgrind-out-file=/dev/null', node, '--predictable', '--single-threaded', script, ...clientArguments]
  const run = spawnSync('valgrind', valgrind, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  const collected = /Collected : (\d+)/.exec(run.stderr) // callgrind's summary, on stderr
  if (run.status !== 0 || collected === null) throw new Error(`the counted client failed (${run.status}):\n${run.stderr.slice(-2000)}`)
  return Number(collected[1])
}

/** As a client: warm up, then send `requests` more, and exit. */
async function sendAndExit(requests) {
  const origin = await startBenchOrigin([size])
  const dispatcher = await CONTENDERS[args.contender]()
  const { warmUrl, nextUrl } = workloads(origin.base)[workload](size)
  const send = CLIENTS[client]
  if (warmUrl) await send(warmUrl, dispatcher)
  const sendMany = async (count) => {
    let left = count
    const loop = async () => {
      for (let sent = 1; left-- > 0; sent++) {
        const status = await send(nextUrl(), dispatcher)
        if (status !== 200) throw new Error(`status ${status}`)
        if (sent % 16 === 0) await new Promise((resolve) => setImmediate(resolve)) // as the throughput loops do
      }
    }
    await Promise.all(Array.from({ length: IN_FLIGHT }, loop))
  }
  await sendMany(WARM_UP_REQUESTS)
  await sendMany(requests)
  await dispatcher.close()
  origin.close()
}
