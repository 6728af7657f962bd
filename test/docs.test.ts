import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { startOrigin, type Origin } from './helpers/origin.js'
import { isRedisReachable, REDIS_URL } from './helpers/redis.js'

/**
 * Every JavaScript block of the README and of the guide in docs/ runs, as a user would paste it into a
 * module of their own (issue #18: a guide whose code cannot rot). Each block runs in a Node process of its
 * own, in a directory of its own inside the package (.scratch/, ignored by git), so that
 * `import … from 'undici-http-cache'` finds the built package and a file a block writes lands there; with
 * `https://example.com` pointed at a loopback origin; it must run to its end, printing nothing on stderr.
 * Blocks check what they show with node:assert where that is the point.
 */
const root = fileURLToPath(new URL('..', import.meta.url))
const pages = ['README.md', ...readdirSync(`${root}docs`).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]
const BLOCK = /^```js\n([\s\S]*?)^```$/gm

interface Block {
  page: string
  line: number
  code: string
}

const blocks: Block[] = pages.flatMap((page) => {
  const text = readFileSync(`${root}${page}`, 'utf8')
  return [...text.matchAll(BLOCK)].map((match) => ({ page, line: text.slice(0, match.index).split('\n').length, code: match[1]! }))
})
// Blocks that use Redis need one; without it they are skipped (as the RedisStore tests are), except under CI.
const redisMissing = !(await isRedisReachable()) && process.env.CI !== 'true'
const needsRedis = (block: Block): boolean => block.code.includes('RedisStore') && block.code.includes('createClient')

/**
 * The origin a block's example.com reaches (one per block): any path answers 200 with a small JSON body,
 * fresh for a minute and with an ETag (under /graphql wrapped as a GraphQL response), and 304 to a request
 * that names that ETag.
 */
function startDocsOrigin(): Promise<Origin> {
  return startOrigin((request, response) => {
    const etag = '"v1"'
    if (request.headers['if-none-match'] === etag) return void response.writeHead(304, { etag, 'cache-control': 'max-age=60' }).end()
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60', etag })
    // A GraphQL client is answered as a GraphQL server answers: its data under `data`.
    const data = { path: request.url }
    response.end(JSON.stringify(request.url?.startsWith('/graphql') ? { data } : data))
  })
}

async function run(code: string, origin: Origin): Promise<{ status: number | null; stderr: string }> {
  mkdirSync(`${root}.scratch`, { recursive: true })
  const directory = mkdtempSync(`${root}.scratch/doc-block-`)
  onTestFinished(() => rmSync(directory, { recursive: true, force: true }))
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module'], {
    cwd: directory,
    env: { ...process.env, REDIS_URL },
    stdio: ['pipe', 'ignore', 'pipe'],
    timeout: 20_000,
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  child.stdin.end(code.replaceAll('https://example.com', origin.url.replace(/\/$/, '')))
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stderr })))
}

describe('the code blocks of the README and of docs/', () => {
  it('are there to run (a page without blocks is fine; none at all would mean the pattern broke)', () => {
    expect(blocks.length).toBeGreaterThan(5)
  })

  const cases = blocks.map((block) => [`${block.page}:${block.line}`, block] as const)
  it.each(cases.filter(([, block]) => !needsRedis(block) || !redisMissing))('%s runs to its end', async (_where, block) => {
    const { status, stderr } = await run(block.code, await startDocsOrigin())
    expect(stderr).toBe('')
    expect(status).toBe(0)
  }, 30_000)
})
