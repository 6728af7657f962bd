// Runs the HTTP caching test suite of cache-tests.fyi (http-tests/cache-tests) against CachingAgent, in
// private and in shared mode, and against undici's own cache for comparison. The suite's own server
// handlers, client and result classification are used as they are, from the suite's directory; nothing
// of it is copied here. See docs/conformance.md for the published score.
//
//   npm run conformance                         # all contenders, suite from CACHE_TESTS_DIR or ../shared/cache-tests
//   npm run conformance -- /path/to/cache-tests --only=private,shared
//   options: --only=a,b  --if-present (no suite: say so, exit 0)  --baseline=FILE  --write-baseline
//
// The baseline (test/conformance/baseline.json) lists, per contender of ours, the tests that pass; a run
// fails if one of them does not. Its `deviations` lists, per contender, tests we fail on purpose, each with
// the reason: a run reports them as deliberate, and fails if one of them passes (the behaviour chosen over
// the suite's expectation is lost). --write-baseline rewrites the passing lists and keeps the deviations.
//
// Each contender runs in a child process of its own: the suite's client keeps its results in module state,
// and each contender must start from an empty cache.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { registerHooks } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = resolve(HERE, '../..')
const RESULTS_DIR = join(HERE, 'results')
const DEFAULT_BASELINE = join(HERE, 'baseline.json')

/** Our contenders are checked against the baseline; undici's are measured for comparison only. */
const CONTENDERS = {
  private: { browserCache: true, ours: true },
  shared: { browserCache: false, ours: true },
  'undici-private': { browserCache: true, ours: false },
  'undici-shared': { browserCache: false, ours: false },
}

const flags = Object.fromEntries(
  process.argv
    .slice(2)
    .filter((arg) => arg.startsWith('--'))
    .map((arg) => {
      const [name, value] = arg.slice(2).split('=')
      return [name, value ?? true]
    }),
)
const positional = process.argv.slice(2).filter((arg) => !arg.startsWith('--'))

if (flags.child) await runChild(String(flags.child), String(flags.suite), String(flags.out))
else await runParent()

// ---------------------------------------------------------------------------------------------------------

async function runParent() {
  const suiteDir = resolve(positional[0] ?? process.env.CACHE_TESTS_DIR ?? join(REPO, '../shared/cache-tests'))
  if (!existsSync(join(suiteDir, 'tests/index.mjs'))) {
    console.log(`conformance: no cache-tests suite at ${suiteDir} (give its directory as an argument or CACHE_TESTS_DIR)`)
    process.exit(flags['if-present'] ? 0 : 1)
  }
  const only = typeof flags.only === 'string' ? flags.only.split(',') : Object.keys(CONTENDERS)
  for (const name of only) if (!(name in CONTENDERS)) throw new Error(`unknown contender ${name}`)

  const { default: suites } = await import(pathToFileURL(join(suiteDir, 'tests/index.mjs')).href)
  const { determineTestResult, resultTypes } = await import(pathToFileURL(join(suiteDir, 'test-engine/lib/results.mjs')).href)
  const outcomeName = new Map(Object.entries(resultTypes).map(([name, type]) => [type, name]))

  const baselineFile = typeof flags.baseline === 'string' ? resolve(flags.baseline) : DEFAULT_BASELINE
  const baseline = existsSync(baselineFile) ? JSON.parse(readFileSync(baselineFile, 'utf8')) : {}
  const deviations = baseline.deviations ?? {}

  mkdirSync(RESULTS_DIR, { recursive: true })
  // The contenders run side by side (the suite spends most of its time in deliberate pauses).
  const started = Date.now()
  const raws = await Promise.all(only.map((name) => runContenderInChild(name, suiteDir)))
  const passedBy = {}
  only.forEach((name, index) => {
    const raw = raws[index]
    const outcomes = {}
    for (const suite of suites) {
      for (const test of suite.tests) {
        const type = determineTestResult(suites, test.id, raw, true)
        const outcome = outcomeName.get(type)
        if (outcome === 'untested') continue // not selected for this kind of cache
        const detail = Array.isArray(raw[test.id]) ? raw[test.id].join(': ') : undefined
        outcomes[test.id] = { outcome, kind: test.kind ?? 'required', name: test.name, ...(detail ? { detail } : {}) }
      }
    }
    const sorted = Object.fromEntries(Object.entries(outcomes).sort(([a], [b]) => a.localeCompare(b)))
    writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(sorted, null, 2)}\n`)
    passedBy[name] = Object.keys(sorted).filter((id) => sorted[id].outcome === 'pass')
    printSummary(name, sorted, deviations[name] ?? {})
  })
  console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`)
  checkBaseline(passedBy, { file: baselineFile, baseline, deviations })
}

function printSummary(name, outcomes, deviations) {
  const count = (outcome) => Object.values(outcomes).filter((entry) => entry.outcome === outcome).length
  const requiredFailures = Object.entries(outcomes).filter(([, entry]) => entry.outcome === 'fail')
  console.log(
    `${name}: ${count('pass')} passed, ${requiredFailures.length} failed (required), ${count('optional_fail')} optional missed, ` +
      `checks ${count('yes')} yes / ${count('no')} no, ${count('setup_fail') + count('harness_fail') + count('retry')} setup or harness failures, ` +
      `${count('dependency_fail')} not run for a failed dependency`,
  )
  for (const [id, entry] of requiredFailures) {
    const kind = id in deviations ? 'deliberate deviation' : 'required failure'
    console.log(`  ${kind}: ${id} — ${entry.name}${id in deviations ? `: ${deviations[id]}` : entry.detail ? ` (${entry.detail})` : ''}`)
  }
}

/**
 * Fails the run if a test that passed in the committed baseline fails now, or a deliberate deviation passes
 * (our contenders only).
 */
function checkBaseline(passedBy, { file, baseline, deviations }) {
  const ours = Object.keys(passedBy).filter((name) => CONTENDERS[name].ours)
  if (flags['write-baseline']) {
    for (const name of ours) baseline[name] = passedBy[name]
    writeFileSync(file, `${JSON.stringify(baseline, null, 2)}\n`)
    console.log(`baseline written to ${file}`)
    return
  }
  if (!existsSync(file)) return
  let regressions = 0
  for (const name of ours) {
    const now = new Set(passedBy[name])
    for (const id of baseline[name] ?? []) {
      if (now.has(id)) continue
      regressions++
      console.log(`regression: ${name} ${id} passed in the baseline and does not now`)
    }
    for (const [id, reason] of Object.entries(deviations[name] ?? {})) {
      if (!now.has(id)) continue
      regressions++
      console.log(`regression: ${name} ${id} passes, though the baseline lists it as a deliberate deviation (${reason})`)
    }
  }
  if (regressions > 0) process.exitCode = 1
  else console.log(`baseline: no regressions (${file})`)
}

/** Runs one contender in a child process and returns the suite's raw results (test id → true or [kind, message]). */
async function runContenderInChild(name, suiteDir) {
  const out = join(tmpdir(), `cache-tests-${process.pid}-${name}.json`)
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), `--child=${name}`, `--suite=${suiteDir}`, `--out=${out}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const code = await new Promise((resolveExit) => child.on('exit', resolveExit))
  if (code !== 0) throw new Error(`contender ${name} exited with ${code}`)
  return JSON.parse(readFileSync(out, 'utf8'))
}

// ---------------------------------------------------------------------------------------------------------

async function runChild(name, suiteDir, out) {
  // The suite's client imports 'undici' (for interim responses); its directory has no node_modules, so
  // that import resolves to ours.
  const ourUndici = import.meta.resolve('undici')
  const suiteUrl = pathToFileURL(suiteDir).href
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === 'undici' && context.parentURL?.startsWith(suiteUrl)) return { url: ourUndici, shortCircuit: true }
      return nextResolve(specifier, context)
    },
  })
  const undici = await import('undici')
  const { CachingAgent, MemoryStore, cacheInterceptor } = await import('undici-http-cache')
  const server = await startSuiteServer(suiteDir)
  const baseUrl = `http://127.0.0.1:${server.address().port}`

  // Each contender: a dispatcher for the global one, and the same cache (the same store) as an interceptor.
  const contender = {
    private: () => {
      const store = new MemoryStore()
      return { dispatcher: new CachingAgent({ store }), cache: cacheInterceptor({ store }) }
    },
    shared: () => {
      const store = new MemoryStore()
      return { dispatcher: new CachingAgent({ store, shared: true }), cache: cacheInterceptor({ store, shared: true }) }
    },
    'undici-private': () => undiciCache(undici, 'private'),
    'undici-shared': () => undiciCache(undici, 'shared'),
  }[name]()

  // The suite's client calls the global fetch; undici's fetch follows undici's global dispatcher, so every
  // request of the suite, setup included, goes through the contender. For interim-response tests the client
  // brings a dispatcher of its own, to collect 1xx responses; the contender's cache is composed onto it, so
  // that those requests meet the same cache too.
  undici.setGlobalDispatcher(contender.dispatcher)
  globalThis.fetch = (url, init = {}) =>
    undici.fetch(url, init.dispatcher ? { ...init, dispatcher: init.dispatcher.compose(contender.cache) } : init)

  const { runTests, getResults } = await import(pathToFileURL(join(suiteDir, 'test-engine/client/runner.mjs')).href)
  const { default: suites } = await import(pathToFileURL(join(suiteDir, 'tests/index.mjs')).href)
  await runTests(suites, CONTENDERS[name].browserCache, baseUrl)
  writeFileSync(out, JSON.stringify(getResults()))
  process.exit(0) // the suite leaves keep-alive connections and timers behind
}

/** undici's own cache, as a dispatcher and as an interceptor on one store. */
function undiciCache(undici, type) {
  const store = new undici.cacheStores.MemoryCacheStore()
  const cache = undici.interceptors.cache({ store, type })
  return { dispatcher: new undici.Agent().compose(cache), cache }
}

/** The suite's own request handlers, behind a server of ours that listens on 127.0.0.1 only. */
async function startSuiteServer(suiteDir) {
  const load = async (file) => (await import(pathToFileURL(join(suiteDir, 'test-engine/server', file)).href)).default
  const handlers = {
    config: await load('handle-config.mjs'),
    test: await load('handle-test.mjs'),
    state: await load('handle-state.mjs'),
  }
  const handleFile = await load('handle-file.mjs')
  const server = createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1/')
    const segments = url.pathname.split('/').slice(1)
    const handler = handlers[segments.shift()]
    if (handler) handler(segments, request, response)
    else handleFile(url, request, response)
  })
  await new Promise((resolveListen) => server.listen(0, '127.0.0.1', resolveListen))
  return server
}
