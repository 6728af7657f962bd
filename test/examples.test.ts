import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { isRedisReachable } from './helpers/redis.js'

// The README's examples run as a user runs them: `node examples/<name>.mjs`, importing the built package
// by its name. Each checks its own outcome with node:assert and exits non-zero when it does not hold.
const root = fileURLToPath(new URL('..', import.meta.url))
const examples = readdirSync(`${root}examples`).filter((name) => name.endsWith('.mjs'))
// The Redis example needs a Redis; without one it is skipped (as the RedisStore tests are), except under CI.
const redisMissing = !(await isRedisReachable()) && process.env.CI !== 'true'

describe('examples', () => {
  it('are built against: dist/ exists (npm test builds it first)', () => {
    expect(existsSync(`${root}dist/index.js`)).toBe(true)
  })

  const runs = (name: string): void => {
    // node:sqlite is experimental on Node 22 and says so on stderr; nothing else may appear there.
    const result = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', `examples/${name}`], { cwd: root, encoding: 'utf8', timeout: 20_000 })
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
  }
  const needsRedis = (name: string): boolean => name.startsWith('redis')
  it.each(examples.filter((name) => !needsRedis(name)))('examples/%s runs to the end and its checks hold', runs, 30_000)
  it.skipIf(redisMissing).each(examples.filter(needsRedis))('examples/%s runs to the end and its checks hold', runs, 30_000)
})
