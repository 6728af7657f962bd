// How densely MemoryStore holds small entries (issue #17, "Memory density"): how many 512 B responses a
// 32 MiB store holds, what it charges per entry, and what the heap really holds per entry, each entry
// stored by a miss and then served once as a hit (serving keeps its raw fields with it, which is charged).
// Real parts: CachingAgent, undici's request(), and the bench's origin in a child process.
//
//   node --expose-gc bench/memory-density.mjs [--entries=5000] [--rounds=3] [--fields=0] [--unique] [--store-only]
//
// `--fields=N` adds N fields to each response (an ETag of its own and fields whose values repeat, or with
// `--unique` are its own too);
// `--store-only` leaves the entries unserved, to tell what storing holds from what serving adds.
//
// Heap per entry: retained bytes (heapUsed + arrayBuffers after two full collections, once the event loop
// has turned) after N entries stored and served, less before, over N; the median and min-max of the rounds.
import { request, Agent } from 'undici'
import { CachingAgent, MemoryStore } from 'undici-http-cache'
import { startBenchOrigin } from './harness.mjs'

const MIB = 1024 * 1024
const BODY_BYTES = 512
const IN_FLIGHT = 32
const option = (name, fallback) => Number(process.argv.find((argument) => argument.startsWith(`--${name}=`))?.split('=')[1] ?? fallback)

if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc')
const origin = await startBenchOrigin([BODY_BYTES])
const fields = option('fields', 0)
const unique = process.argv.includes('--unique') ? 'yes' : 'no'
const served = !process.argv.includes('--store-only')
const url = (prefix, index) => `${origin.base}/${prefix}/${index}?size=${BODY_BYTES}&fields=${fields}&unique=${unique}`

/** Sends GETs of `url(index)` for every index below `count`, `IN_FLIGHT` at a time, reading every body. */
async function sendAll(count, urlOf, dispatcher) {
  let next = 0
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) {
        const index = next++
        await (await request(urlOf(index), { dispatcher })).body.arrayBuffer()
      }
    }),
  )
}

async function retainedBytes() {
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setTimeout(resolve, 20))
  globalThis.gc()
  globalThis.gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

/** Entries a 32 MiB store holds once far more distinct URLs than fit have gone through it. */
async function entriesHeld() {
  const store = new MemoryStore({ maxSize: 32 * MIB })
  const agent = new CachingAgent({ store, dispatcher: new Agent({ connections: IN_FLIGHT }) })
  await sendAll(120_000, (index) => url('held', index), agent)
  const held = [...store.keys()].length
  const charged = store.size / held
  await agent.close()
  return { held, charged, evicted: store.evictions }
}

/** Heap held per entry, and charged per entry, for `count` entries stored and each served once. */
async function heapPerEntry(count, round) {
  const store = new MemoryStore({ maxSize: 1024 * MIB })
  const agent = new CachingAgent({ store, dispatcher: new Agent({ connections: IN_FLIGHT }) })
  // Connections, compiled code, and what the cache remembers of the last 1,000 URLs (key.ts): in place
  // before the baseline, so that only what each entry holds is counted.
  await sendAll(2000, (index) => url(`warm${round}`, index), agent)
  await sendAll(2000, (index) => url(`warm${round}`, index), agent)
  await agent.cache.clear()
  const before = await retainedBytes()
  const urlOf = (index) => url(`entry${round}`, index)
  await sendAll(count, urlOf, agent) // stored
  if (served) await sendAll(count, urlOf, agent) // served once each
  const after = await retainedBytes()
  const held = [...store.keys()].length
  if (held !== count) throw new Error(`expected ${count} entries, the store holds ${held}`)
  const result = { heap: (after - before) / count, charged: store.size / count }
  await agent.close()
  return result
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const range = (values) => `${Math.round(Math.min(...values))}-${Math.round(Math.max(...values))}`

const count = option('entries', 5000)
const rounds = option('rounds', 3)
const measured = []
for (let round = 0; round < rounds; round++) measured.push(await heapPerEntry(count, round))
const heap = measured.map((result) => result.heap)
const charged = measured.map((result) => result.charged)
const how = served ? 'stored then served once' : 'stored, never served'
const extra = `${fields} more fields${unique === 'yes' ? ' of their own' : ''}`
console.log(`${count} entries of ${BODY_BYTES} B with ${extra}, ${how}, ${rounds} rounds (Node ${process.versions.node}):`)
console.log(`  heap held per entry: median ${Math.round(median(heap))} B (${range(heap)})`)
console.log(`  charged per entry:   median ${Math.round(median(charged))} B (${range(charged)})`)
const held = await entriesHeld()
console.log(`32 MiB MemoryStore after 120,000 distinct URLs: ${held.held} entries held, ${Math.round(held.charged)} B charged each, ${held.evicted} evicted`)
origin.close()
