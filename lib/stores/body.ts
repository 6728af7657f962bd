/**
 * A stored response's body: one buffer, or the chunks it arrived in, in order. Keeping the chunks spares a
 * miss the copy of its body into one buffer (an allocation and a write of every byte: 200-350 µs per MiB,
 * measured), so only stores that keep entries as objects are given them (`CacheStore.acceptsBodyChunks`);
 * stores that turn entries into bytes copy the body anyway.
 */
export type ResponseBody = Uint8Array | readonly Uint8Array[]

/** Body bytes a hit hands the consumer at a time, so that its pause() holds back the rest. */
export const REPLAY_CHUNK_BYTES = 64 * 1024

export function bodyLength(body: ResponseBody): number {
  if (!Array.isArray(body)) return (body as Uint8Array).byteLength
  let length = 0
  for (const chunk of body) length += chunk.byteLength
  return length
}

/** The body as one buffer: itself, or its chunks copied into one of exactly their size. */
export function joinBody(body: ResponseBody): Uint8Array {
  return Array.isArray(body) ? joinChunks(body, bodyLength(body)) : (body as Uint8Array)
}

/**
 * `fields` with the body as one buffer, for users' code (a filter, `cache.get()`): a body kept as chunks is
 * joined the first time it is read, so that code that never reads it costs no copy.
 */
export function withJoinedBody<T extends object>(fields: T, body: ResponseBody): T & { readonly body: Uint8Array } {
  if (!Array.isArray(body)) return Object.assign(fields, { body: body as Uint8Array })
  let joined: Uint8Array | undefined
  const get = (): Uint8Array => (joined ??= joinBody(body))
  return Object.defineProperty(fields, 'body', { enumerable: true, get }) as T & { readonly body: Uint8Array }
}

/** The body's chunks: no copy either way. */
export function bodyChunks(body: ResponseBody): readonly Uint8Array[] {
  return Array.isArray(body) ? body : [body as Uint8Array]
}

/**
 * `size` bytes of chunks in one new buffer. `Buffer.concat` would take small buffers from Node's shared
 * pool, and a stored body would then keep a whole pool slab alive (64 KiB for a 16 KiB body, measured).
 */
export function joinChunks(chunks: readonly Uint8Array[], size: number): Buffer {
  const joined = Buffer.allocUnsafeSlow(size)
  let offset = 0
  for (const chunk of chunks) {
    joined.set(chunk, offset)
    offset += chunk.byteLength
  }
  return joined
}

/**
 * The same bytes in chunks of exactly `REPLAY_CHUNK_BYTES` (the last one shorter), each a buffer of its own
 * (as joinChunks, outside Node's pool), or `chunks` itself when they already are so.
 */
export function inReplayChunks(chunks: readonly Uint8Array[]): readonly Uint8Array[] {
  const last = chunks.length - 1
  const isReplayChunk = (chunk: Uint8Array, index: number): boolean =>
    index === last ? chunk.byteLength <= REPLAY_CHUNK_BYTES : chunk.byteLength === REPLAY_CHUNK_BYTES
  if (chunks.every(isReplayChunk)) return chunks
  let left = bodyLength(chunks)
  const replayed: Buffer[] = []
  let target = Buffer.alloc(0)
  let filled = 0
  for (const chunk of chunks) {
    for (let read = 0; read < chunk.byteLength; ) {
      if (filled === target.byteLength) {
        target = Buffer.allocUnsafeSlow(Math.min(REPLAY_CHUNK_BYTES, left))
        replayed.push(target)
        filled = 0
      }
      const copied = Math.min(chunk.byteLength - read, target.byteLength - filled)
      target.set(chunk.subarray(read, read + copied), filled)
      read += copied
      filled += copied
      left -= copied
    }
  }
  return replayed
}

/** Whether `value` is a body as a store may return it. */
export function isResponseBody(value: unknown): value is ResponseBody {
  return value instanceof Uint8Array || (Array.isArray(value) && value.every((chunk) => chunk instanceof Uint8Array))
}
