import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The README's examples run as a user runs them: `node examples/<name>.mjs`, importing the built package
// by its name. Each checks its own outcome with node:assert and exits non-zero when it does not hold.
const root = fileURLToPath(new URL('..', import.meta.url))
const examples = readdirSync(`${root}examples`).filter((name) => name.endsWith('.mjs'))

describe('examples', () => {
  it('are built against: dist/ exists (npm test builds it first)', () => {
    expect(existsSync(`${root}dist/index.js`)).toBe(true)
  })

  it.each(examples)('examples/%s runs to the end and its checks hold', (name) => {
    const result = spawnSync(process.execPath, [`examples/${name}`], { cwd: root, encoding: 'utf8', timeout: 20_000 })
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
  }, 30_000)
})
