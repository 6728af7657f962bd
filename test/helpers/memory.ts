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
