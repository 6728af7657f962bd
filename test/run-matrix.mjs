// `npm test` runs the suite once per supported pairing of Node and undici, installed side by side as
// dev dependencies (node@24 + undici@8, and node22 + undici7 aliases), then prints one summary line
// "N passed, N failed" (the sum of both runs and of the packed-package run), which CI reads. It exits
// non-zero if any run fails. The packed-package run (test/packed/run.mjs) installs the tarball `npm pack`
// makes into temporary projects and drives it there, each check counted as a test.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runPackedInstall } from './packed/run.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const runs = [
  { name: 'Node 24 + undici 8', node: 'node_modules/node/bin/node', undiciMajor: '8' },
  { name: 'Node 22 + undici 7', node: 'node_modules/node22/bin/node', undiciMajor: '7' },
]
const resultsDir = `${root}.vitest-results`
rmSync(resultsDir, { recursive: true, force: true })
mkdirSync(resultsDir, { recursive: true })

let passed = 0
let failed = 0
const lines = []
for (const [index, run] of runs.entries()) {
  const outputFile = `${resultsDir}/run-${index}.json`
  console.log(`\n=== ${run.name} ===`)
  const result = spawnSync(
    `${root}${run.node}`,
    ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${outputFile}`, ...process.argv.slice(2)],
    { cwd: root, stdio: 'inherit', env: { ...process.env, UNDICI_MAJOR: run.undiciMajor } },
  )
  const report = existsSync(outputFile) ? JSON.parse(readFileSync(outputFile, 'utf8')) : undefined
  const runPassed = report?.numPassedTests ?? 0
  // A suite that failed to load has no failed tests of its own; count it, so a broken file cannot pass.
  let runFailed = (report?.numFailedTests ?? 0) + (report?.testResults ?? []).filter((file) => file.status === 'failed' && file.assertionResults.length === 0).length
  if (result.status !== 0 && runFailed === 0) runFailed = 1
  passed += runPassed
  failed += runFailed
  lines.push(`${run.name}: ${runPassed} passed, ${runFailed} failed`)
}
for (const tally of await runPackedInstall()) {
  passed += tally.passed
  failed += tally.failed
  lines.push(`${tally.name}: ${tally.passed} passed, ${tally.failed} failed`)
}
console.log(`\n${lines.join('\n')}`)
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed > 0 ? 1 : 0
