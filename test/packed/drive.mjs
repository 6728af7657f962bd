// Runs scenarios.mjs with the package loaded as an ES module user loads it: `import`, through the "import"
// condition of its exports. run.mjs copies this file into the temporary project.
import { runScenarios } from './scenarios.mjs'

await runScenarios({
  entry: 'dist/index.js',
  load: async () => ({
    cache: await import('undici-http-cache'),
    undici: await import('undici'),
    resolved: import.meta.resolve('undici-http-cache'),
  }),
})
