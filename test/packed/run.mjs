// The package as users get it (issue #16 part 10). Tests of the checkout import lib/ beside exactly the
// copies of undici the tests chose, which hides what only the published tarball can get wrong: a file
// missing from `files`, a broken `exports` condition, a runtime dependency declared only as a dev
// dependency, a second copy of undici. So this builds the package, packs it (`npm pack`), installs the
// tarball into two temporary projects outside the repository, as a user's `npm install` would, beside
// undici 7 (run on Node 22) and beside undici 8 (Node 24), and drives it there in ESM and in CommonJS
// (scenarios.mjs). Every check counts as one test in `npm test`'s summary (test/run-matrix.mjs calls
// runPackedInstall()); `node test/packed/run.mjs` runs it alone.
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const here = fileURLToPath(new URL('.', import.meta.url))
// `undici` names the copy in this repository's node_modules whose exact version each project installs.
const pairs = [
  { name: 'Node 24 + undici 8', node: `${root}node_modules/node/bin/node`, undici: 'undici' },
  { name: 'Node 22 + undici 7', node: `${root}node_modules/node22/bin/node`, undici: 'undici7' },
]
const drivers = [
  { format: 'ESM', file: 'drive.mjs' },
  { format: 'CommonJS', file: 'drive.cjs' },
]
// What a user downloads: the built code, its types and maps, the README, the manifest. Never tests or bench.
const ALLOWED_IN_TARBALL = /^(package\.json|README\.md|LICENSE(\.\w+)?|dist\/.+)$/
const INSTALL_TIMEOUT_MS = 180_000
const DRIVER_TIMEOUT_MS = 60_000

/** Counts checks of one group as tests and prints a line for each. */
function createTally(name) {
  console.log(`\n=== ${name} ===`)
  const tally = { name, passed: 0, failed: 0 }
  tally.record = (check, failure) => {
    if (failure === undefined) {
      tally.passed++
      console.log(` ✓ ${check}`)
    } else {
      tally.failed++
      console.log(` × ${check}\n     ${String(failure).trim().replaceAll('\n', '\n     ')}`)
    }
  }
  return tally
}

/** Packs, installs and drives the package; returns one tally per group (the tarball, then each pair). */
export async function runPackedInstall() {
  const workDir = mkdtempSync(join(tmpdir(), 'undici-http-cache-packed-'))
  const tally = createTally('Packed package: the tarball')
  try {
    const tarball = pack(tally, workDir)
    if (tarball === undefined) return [tally]
    // Both installs at once: they wait mostly on npm's cache, and this runs on every `npm test`.
    const projects = await Promise.all(pairs.map((pair) => install(pair, tarball, workDir)))
    return [tally, ...projects.map(driveProject)]
  } catch (error) {
    // A fault of this script (npm printing something else than its JSON, say) still counts, as a failure.
    tally.record('the packed-package run completes', error?.stack ?? error)
    return [tally]
  } finally {
    rmSync(workDir, { recursive: true, force: true })
  }
}

/** Builds and packs the package into `workDir`; checks what the tarball holds. Returns its path. */
function pack(tally, workDir) {
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' })
  tally.record('npm run build succeeds', build.status === 0 ? undefined : tail(build.stdout + build.stderr))
  if (build.status !== 0) return undefined
  const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', workDir], { cwd: root, encoding: 'utf8' })
  const [report] = packed.status === 0 ? JSON.parse(packed.stdout) : []
  tally.record('npm pack makes a tarball', report === undefined ? tail(packed.stdout + packed.stderr) : undefined)
  if (report === undefined) return undefined
  const files = new Set(report.files.map((file) => file.path))
  const unexpected = [...files].filter((path) => !ALLOWED_IN_TARBALL.test(path))
  tally.record('the tarball holds package.json, README.md and dist/ only (no tests, sources or bench)', unexpected.length === 0 ? undefined : `unexpected: ${unexpected.join(', ')}`)
  const missing = namedFiles(JSON.parse(readFileSync(`${root}package.json`, 'utf8'))).filter((path) => !files.has(path))
  tally.record('the tarball holds every file that main, module, types and exports name', missing.length === 0 ? undefined : `missing: ${missing.join(', ')}`)
  return join(workDir, report.filename)
}

/** Every file path package.json's entry points name, every condition of `exports` included. */
function namedFiles(manifest) {
  const paths = []
  const collect = (value) => {
    if (typeof value === 'string') paths.push(value.replace(/^\.\//, ''))
    else if (value !== null && typeof value === 'object') Object.values(value).forEach(collect)
  }
  collect([manifest.main, manifest.module, manifest.types, manifest.exports])
  return [...new Set(paths)]
}

/** A new project beside `pair`'s undici, into which npm installs the tarball as a user would. */
function install(pair, tarball, workDir) {
  const directory = join(workDir, pair.undici)
  mkdirSync(directory)
  writeFileSync(join(directory, 'package.json'), JSON.stringify({ name: `packed-${pair.undici}`, version: '1.0.0', private: true }))
  const { version } = JSON.parse(readFileSync(`${root}node_modules/${pair.undici}/package.json`, 'utf8'))
  const args = ['install', tarball, `undici@${version}`, '--prefer-offline', '--no-audit', '--no-fund']
  return new Promise((resolve) => {
    const child = spawn('npm', args, { cwd: directory, env: userEnv(pair), timeout: INSTALL_TIMEOUT_MS })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('error', (error) => (output += String(error)))
    child.on('close', (status) => resolve({ pair, directory, version, installed: status === 0, output }))
  })
}

/** Checks what npm installed, then runs each driver there on the pair's Node. */
function driveProject({ pair, directory, version, installed, output }) {
  const tally = createTally(`Packed package: ${pair.name}`)
  tally.record(`npm install of the tarball beside undici@${version} succeeds`, installed ? undefined : tail(output))
  if (!installed) return tally
  const copies = findPackages(join(directory, 'node_modules'), 'undici')
  tally.record('one copy of undici is installed', copies.length === 1 ? undefined : `found: ${copies.join(', ')}`)
  for (const file of ['scenarios.mjs', ...drivers.map((driver) => driver.file)]) copyFileSync(join(here, file), join(directory, file))
  for (const { format, file } of drivers) {
    const run = spawnSync(pair.node, [file], { cwd: directory, env: userEnv(pair), encoding: 'utf8', timeout: DRIVER_TIMEOUT_MS })
    for (const line of run.stdout.split('\n')) {
      const result = /^(ok|not ok) ([^\t]+)(?:\t(.*))?$/.exec(line)
      if (result) tally.record(`${format}: ${result[2]}`, result[1] === 'ok' ? undefined : result[3])
    }
    tally.record(`${format}: ${file} runs to its end`, run.status === 0 ? undefined : tail(`${run.error ?? ''}${run.stderr}`))
  }
  return tally
}

/** Directories under `nodeModules`, at any depth, of installed packages called `name`. */
function findPackages(nodeModules, name) {
  if (!existsSync(nodeModules)) return []
  const found = []
  for (const entry of readdirSync(nodeModules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue
    const directory = join(nodeModules, entry.name)
    const packages = entry.name.startsWith('@') ? readdirSync(directory).map((scoped) => join(directory, scoped)) : [directory]
    for (const candidate of packages) {
      if (packageName(candidate) === name) found.push(candidate)
      found.push(...findPackages(join(candidate, 'node_modules'), name))
    }
  }
  return found
}

function packageName(directory) {
  try {
    return JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')).name
  } catch {
    return undefined // not a package (a .bin folder, say)
  }
}

/**
 * The environment a user's shell would give: the pair's Node first on PATH (npm runs on it too), without
 * the npm_* variables `npm test` sets, and without NODE_PATH, which could find what the project lacks.
 */
function userEnv(pair) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) && name !== 'NODE_PATH'))
  return { ...env, PATH: `${dirname(pair.node)}${delimiter}${process.env.PATH}` }
}

function tail(text, lines = 15) {
  return text.trim().split('\n').slice(-lines).join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const tallies = await runPackedInstall()
  const passed = tallies.reduce((sum, tally) => sum + tally.passed, 0)
  const failed = tallies.reduce((sum, tally) => sum + tally.failed, 0)
  console.log(`\n${passed} passed, ${failed} failed`)
  process.exitCode = failed > 0 ? 1 : 0
}
