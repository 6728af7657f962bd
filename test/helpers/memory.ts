/**
 * Bytes still in use after a full collection, on the JavaScript heap and in ArrayBuffers (where bodies
 * live): what is retained, not what awaits collection.
 */
export function retainedHeapBytes(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('memory tests need node --expose-gc (set in vitest.config.ts)')
  gc()
  gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

/**
 * `retainedHeapBytes()` once the event loop has turned: what undici defers to a later turn (each finished
 * body stream's teardown) is done, and only what is really kept is counted.
 */
export async function settledHeapBytes(): Promise<number> {
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setTimeout(resolve, 20))
  return retainedHeapBytes()
}
