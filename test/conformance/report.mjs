// Writes docs/conformance.md from the last run's results (test/conformance/results/*.json), the suite's
// published results of browsers and proxies, and our explanations of every test we do not pass.
//
//   npm run conformance && node test/conformance/report.mjs [suite directory]
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { explain } from './explanations.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = resolve(HERE, '../..')
const suiteDir = resolve(process.argv[2] ?? process.env.CACHE_TESTS_DIR ?? join(REPO, '../shared/cache-tests'))
const load = async (path) => (await import(pathToFileURL(join(suiteDir, path)).href)).default
const suites = await load('tests/index.mjs')
const published = await load('results/index.mjs')
const { determineTestResult, resultTypes } = await import(pathToFileURL(join(suiteDir, 'test-engine/lib/results.mjs')).href)
const outcomeName = new Map(Object.entries(resultTypes).map(([name, type]) => [type, name]))
const suiteVersion = JSON.parse(readFileSync(join(suiteDir, 'package.json'), 'utf8')).version

const readResults = (name) => JSON.parse(readFileSync(join(HERE, 'results', `${name}.json`), 'utf8'))
/** Tests we fail on purpose, per mode, with the reason: the baseline says which (see cache-tests.mjs). */
const deviations = JSON.parse(readFileSync(join(HERE, 'baseline.json'), 'utf8')).deviations ?? {}

/** Outcome counts, from our results files (already classified) or from a published raw result map. */
function tally(outcomes) {
  const count = (...names) => outcomes.filter((outcome) => names.includes(outcome)).length
  return {
    passed: count('pass'),
    failed: count('fail'),
    optional: count('optional_fail'),
    yes: count('yes'),
    no: count('no'),
    harness: count('setup_fail', 'harness_fail', 'retry'),
    dependency: count('dependency_fail'),
  }
}

/** Classifies a published result map over the tests its kind of cache runs (as the suite's runner selects them). */
function tallyPublished(raw, browser) {
  const outcomes = []
  for (const suite of suites) {
    for (const test of suite.tests) {
      if (test.browser_only && !browser) continue
      if ((test.cdn_only || test.browser_skip) && browser) continue
      const outcome = outcomeName.get(determineTestResult(suites, test.id, raw, true))
      if (outcome !== 'untested') outcomes.push(outcome)
    }
  }
  return tally(outcomes)
}

const row = (name, t) => `| ${name} | ${t.passed} | ${t.failed} | ${t.optional} | ${t.yes} / ${t.no} | ${t.harness} | ${t.dependency} |`
const HEADER = [
  '| cache | passed | failed (required) | optional missed | checks yes / no | setup or harness | not run (dependency) |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
]

function modeSection(mode, undiciName, publishedType, browser) {
  const ours = readResults(mode)
  const lines = [
    ...HEADER,
    row(`**CachingAgent (${mode})**`, tally(Object.values(ours).map((entry) => entry.outcome))),
    row(`undici ${'interceptors.cache'}({ type: '${mode}' })`, tally(Object.values(readResults(undiciName)).map((entry) => entry.outcome))),
    ...published
      .filter((engine) => (browser ? engine.type === 'browser' : engine.type !== 'browser'))
      .map((engine) => row(`${engine.name} ${engine.version} (published)`, tallyPublished(JSON.parse(readFileSync(join(suiteDir, 'results', engine.file), 'utf8')), browser))),
  ]
  const unexplained = []
  const notPassed = Object.entries(ours)
    .filter(([, entry]) => entry.outcome !== 'pass' && entry.outcome !== 'yes')
    .map(([id, entry]) => {
      const deliberate = deviations[mode]?.[id]
      const why = deliberate === undefined ? explain(id) : `**Deliberate deviation.** ${deliberate}.`
      if (why === undefined) unexplained.push(id)
      return `| \`${id}\` | ${entry.outcome.replace('_', ' ')} | ${entry.name.replaceAll('|', '\\|')} | ${why ?? '**not explained yet**'} |`
    })
  return {
    unexplained,
    text: [
      `## ${mode === 'private' ? 'Private mode (as a browser cache): `new CachingAgent()`' : 'Shared mode (as a proxy cache): `new CachingAgent({ shared: true })`'}`,
      '',
      `Beside undici's own cache measured by the same runner, and the suite's published results for ${publishedType}.`,
      '',
      ...lines,
      '',
      `### Tests CachingAgent does not pass in ${mode} mode`,
      '',
      'Checks answered "no" describe a behaviour the suite asks about rather than a requirement; optional misses are optimisations not made.',
      '',
      '| test | outcome | what it asks | why |',
      '| --- | --- | --- | --- |',
      ...notPassed,
      '',
    ].join('\n'),
  }
}

const deviationList = Object.entries(deviations)
  .flatMap(([mode, tests]) => Object.entries(tests).map(([id, reason]) => `- ${mode} mode, \`${id}\`: ${reason}.`))
  .join('\n')
const privateMode = modeSection('private', 'undici-private', 'browsers (the suite runs the same selection of tests for them)', true)
const sharedMode = modeSection('shared', 'undici-shared', 'reverse proxies and CDNs', false)
const document = `# Conformance: the cache-tests.fyi suite

Generated by \`test/conformance/report.mjs\` from a run of \`npm run conformance\` (http-tests/cache-tests
${suiteVersion}). The runner uses the suite's own server handlers, client and result classification
(required, optimal, check; a test whose dependency fails is not counted as failed): private mode runs the
suite's browser selection, shared mode its proxy selection, including its CDN-Cache-Control tests. The
client's requests go through undici's \`fetch\` with the cache as the global dispatcher; for the tests of
interim (1xx) responses, where the client brings a dispatcher of its own, the same cache is composed onto it.
\`.ci/run\` runs the suite on every change and fails if a test that passes in
\`test/conformance/baseline.json\` fails, or if one of the tests it lists as a deliberate deviation passes.

Deliberate deviations, failed on purpose (the baseline's \`deviations\`):

${deviationList}

The published figures are the suite's \`results/\` files, classified the same way; they were measured by the
suite's authors against those products, not by us.

${privateMode.text}
${sharedMode.text}`
writeFileSync(join(REPO, 'docs/conformance.md'), document)
const unexplained = [...new Set([...privateMode.unexplained, ...sharedMode.unexplained])]
console.log(`docs/conformance.md written${unexplained.length ? `; not explained yet: ${unexplained.join(', ')}` : ''}`)
if (unexplained.length > 0) process.exitCode = 1
