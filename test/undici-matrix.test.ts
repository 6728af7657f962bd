import { createRequire } from 'node:module'
import * as undici from 'undici'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)

describe('test matrix', () => {
  // npm test runs every file twice; this proves each run exercises the undici major it says it does.
  it('loads the undici major that UNDICI_MAJOR names', async () => {
    const undici7 = await import('undici7')
    if (process.env.UNDICI_MAJOR === '7') {
      expect(undici.Agent).toBe(undici7.Agent)
    } else {
      expect(undici.Agent).not.toBe(undici7.Agent)
      expect(require('undici/package.json').version).toMatch(/^8\./)
    }
  })
})
