import { defineConfig } from 'vitest/config'

// `npm test` runs the suite twice (see test/run-matrix.mjs): on Node 24 with undici 8, and on Node 22 with
// undici 7, installed side by side as the `undici7` alias. UNDICI_MAJOR=7 points every import of 'undici',
// in the library and in the tests, at that copy.
const undiciAlias = process.env.UNDICI_MAJOR === '7' ? [{ find: /^undici$/, replacement: 'undici7' }] : []

export default defineConfig({
  resolve: { alias: undiciAlias },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 10_000,
    hookTimeout: 10_000,
    // Memory tests call gc() to measure what stays retained, not what awaits collection.
    execArgv: ['--expose-gc'],
  },
})
