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

/**
 * Allocates and drops `bytes` of small Buffers, as any program does between two requests. They come from
 * Node's shared pool (slabs of `Buffer.poolSize`: 8 KiB on Node 22, 64 KiB on Node 24), so the pool moves
 * on to fresh slabs: a small pool Buffer kept from before then keeps its whole slab alive (issue #16).
 */
export function allocateShortLivedBuffers(bytes: number): void {
  const SMALL_BUFFER_BYTES = 1024
  for (let allocated = 0; allocated < bytes; allocated += SMALL_BUFFER_BYTES) Buffer.allocUnsafe(SMALL_BUFFER_BYTES).fill(0)
}
