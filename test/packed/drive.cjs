// Runs scenarios.mjs with the package loaded as a CommonJS user loads it: `require`, through the "require"
// condition of its exports. run.mjs copies this file into the temporary project.
import('./scenarios.mjs').then(({ runScenarios }) =>
  runScenarios({
    entry: 'dist/index.cjs',
    load: () => ({
      cache: require('undici-http-cache'),
      undici: require('undici'),
      resolved: require.resolve('undici-http-cache'),
    }),
  }),
)
