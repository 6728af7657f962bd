/**
 * The raw form of fields (name and value Buffers, as undici's `controller.rawHeaders`) for keeping with a
 * stored entry, so that hits need not build it again. Built as `toRawHeaders` builds it, but nothing here
 * comes from Node's shared Buffer pool: `Buffer.from` takes a small buffer from a pool slab (8 KiB on
 * Node 22, 64 KiB on Node 24), and one kept for an entry's lifetime keeps its whole slab alive once the
 * program has allocated past it. Kept so, 3,000 small entries served once each held 197 MiB for the 9 MiB
 * their store counted (issue #16).
 */
import type { HeaderRecord } from './headers.js'

/** Names longer than this get a Buffer of their own rather than a shared one. */
const MAX_SHARED_NAME_LENGTH = 64
/** Shared names at most; all are forgotten at once when there are more (the ones in use soon come back). */
const MAX_SHARED_NAMES = 1000

/**
 * Names repeat from one response to the next, and a Buffer costs about 130 bytes besides its own (measured),
 * so every kept raw form shares one Buffer per name.
 */
const sharedNames = new Map<string, Buffer>()

/**
 * The raw form of `headers`: each value a view of one buffer allocated for this call, of exactly their
 * bytes; each name a shared Buffer. Built on an entry's first hit and when its fresh fields change (at most
 * once a second), never on every hit: it costs what `toRawHeaders` does on Node 24, and 0.2-0.8 µs more on
 * Node 22 (5 to 25 fields, measured).
 */
export function keptRawHeaders(headers: HeaderRecord): Buffer[] {
  let byteLength = 0
  for (const name in headers) {
    const value = headers[name]!
    if (Array.isArray(value)) for (const item of value) byteLength += item.length // latin1: a byte per character
    else byteLength += value.length
  }
  const bytes = Buffer.allocUnsafeSlow(byteLength)
  let offset = 0
  const view = (text: string): Buffer => {
    const start = offset
    offset += bytes.write(text, start, 'latin1')
    return bytes.subarray(start, offset)
  }
  const raw: Buffer[] = []
  for (const name in headers) {
    const value = headers[name]!
    const nameBytes = rawName(name)
    if (Array.isArray(value)) for (const item of value) raw.push(nameBytes, view(item))
    else raw.push(nameBytes, view(value))
  }
  return raw
}

function rawName(name: string): Buffer {
  let bytes = sharedNames.get(name)
  if (bytes !== undefined) return bytes
  bytes = Buffer.allocUnsafeSlow(name.length)
  bytes.write(name, 0, 'latin1')
  if (name.length <= MAX_SHARED_NAME_LENGTH) {
    if (sharedNames.size >= MAX_SHARED_NAMES) sharedNames.clear()
    sharedNames.set(name, bytes)
  }
  return bytes
}
