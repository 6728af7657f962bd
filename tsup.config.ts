import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['lib/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node22',
  // undici is a peer dependency: the user's copy must be the one we extend and dispatch into.
  external: ['undici'],
})
