/**
 * The raw form of fields (name and value Buffers, as undici's `controller.rawHeaders`) for keeping with a
 * stored entry, so that hits need not build it again. Built as `toRawHeaders` builds it, but nothing here
 * comes from Node's shared Buffer pool: `Buffer.from` takes a small buffer from a pool slab (8 KiB on
 * Node 22, 64 KiB on Node 24), and one kept for an entry's lifetime keeps its whole slab alive once the
 * program has allocated past it. Kept so, 3,000 small entries served once each held 197 MiB for the 9 MiB
 * their store counted (issue #16).
 */
import type { HeaderRecord } from '../rules/headers.js'

/** Names and values longer than this get bytes of their own rather than shared ones. */
const MAX_SHARED_LENGTH = 64
/** Names, and values seen, remembered at most; all are forgotten at once when there are more (the ones in use soon come back). */
const MAX_SHARED = 1000

/**
 * A Buffer costs about 100 bytes of heap besides its own bytes, and an ArrayBuffer as much again (measured),
 * which was most of what an entry served once kept (issue #17). Names repeat from one response to the next,
 * so every kept raw form shares one Buffer per name. So do values, which repeat too (`Cache-Control`,
 * `Content-Type`, a `Date` for every response of the same second, a hit's `Age` and `Cache-Status`), once
 * seen twice: a value seen once (an `ETag`, say) is likely its entry's own, and is written with the other
 * unshared ones in one buffer for the entry, as before.
 */
const sharedNames = new Map<string, Buffer>()
const sharedValues = new Map<string, Buffer | 'seen once'>()

/**
 * The raw form of `headers`: each name and each value seen before a shared Buffer, and every other value a
 * view of one buffer allocated for this call, of exactly their bytes. Built on an entry's first hit and when
 * its fresh fields change (at most once a second), never on every hit.
 */
export function keptRawHeaders(headers: HeaderRecord): Buffer[] {
  const raw: (Buffer | string)[] = []
  let ownLength = 0
  const push = (name: string, value: string): void => {
    const shared = sharedValue(value)
    if (shared === undefined) ownLength += value.length // latin1: a byte per character
    raw.push(sharedName(name), shared ?? value)
  }
  for (const name in headers) {
    const value = headers[name]!
    if (Array.isArray(value)) for (const item of value) push(name, item)
    else push(name, value)
  }
  if (ownLength === 0) return raw as Buffer[]
  const bytes = Buffer.allocUnsafeSlow(ownLength)
  let offset = 0
  for (let index = 1; index < raw.length; index += 2) {
    const value = raw[index]!
    if (typeof value !== 'string') continue
    const start = offset
    offset += bytes.write(value, start, 'latin1')
    raw[index] = bytes.subarray(start, offset)
  }
  return raw as Buffer[]
}

function sharedName(name: string): Buffer {
  let bytes = sharedNames.get(name)
  if (bytes !== undefined) return bytes
  bytes = ownBuffer(name)
  if (name.length <= MAX_SHARED_LENGTH) remember(sharedNames, name, bytes)
  return bytes
}

/** The shared Buffer of a value seen before; `undefined` the first time (or for a long value). */
function sharedValue(value: string): Buffer | undefined {
  if (value.length > MAX_SHARED_LENGTH) return undefined
  const known = sharedValues.get(value)
  if (known === undefined) remember(sharedValues, value, 'seen once')
  if (known !== 'seen once') return known
  const bytes = ownBuffer(value)
  sharedValues.set(value, bytes)
  return bytes
}

function ownBuffer(text: string): Buffer {
  const bytes = Buffer.allocUnsafeSlow(text.length)
  bytes.write(text, 0, 'latin1')
  return bytes
}

function remember<Value>(map: Map<string, Value>, text: string, value: Value): void {
  if (map.size >= MAX_SHARED) map.clear()
  map.set(text, value)
}
