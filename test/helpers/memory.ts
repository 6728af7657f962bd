/** Bytes of heap still in use after a full collection: what is retained, not what awaits collection. */
export function retainedHeapBytes(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('memory tests need node --expose-gc (set in vitest.config.ts)')
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
