/**
 * Entries as bytes, for stores that keep bytes (SQLite, Redis): the entry's fields as JSON, then the body
 * and the request body as they are, so that a body costs its own size and not a base64 third more.
 *
 *   [4 bytes: length of the JSON, big-endian] [JSON] [body] [request body]
 */
import { bodyChunks, bodyLength } from './body.js'
import type { CacheEntry } from './store.js'

const LENGTH_BYTES = 4

/** Encodes an entry for a byte store. */
export function encodeEntry(entry: CacheEntry): Buffer {
  if (entry.kind !== 'response') return frame(JSON.stringify(entry), [])
  const { body, requestBody, ...fields } = entry
  const meta = JSON.stringify({ ...fields, bodyLength: bodyLength(body), requestBodyLength: requestBody?.byteLength ?? -1 })
  return frame(meta, requestBody === undefined ? bodyChunks(body) : [...bodyChunks(body), requestBody])
}

function frame(meta: string, parts: readonly Uint8Array[]): Buffer {
  const json = Buffer.from(meta)
  const length = Buffer.alloc(LENGTH_BYTES)
  length.writeUInt32BE(json.byteLength)
  return Buffer.concat([length, json, ...parts])
}

/**
 * Decodes what `encodeEntry` wrote, from bytes the caller hands over (they are not copied). Anything else
 * (truncated, another layout) throws. The entry's fields are checked afterwards by `decodeEntry`.
 */
export function decodeEntryBytes(bytes: Uint8Array): unknown {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buffer.byteLength < LENGTH_BYTES) throw new Error('stored value is too short to be an entry')
  const jsonEnd = LENGTH_BYTES + buffer.readUInt32BE(0)
  if (jsonEnd > buffer.byteLength) throw new Error('stored value is truncated')
  const fields = JSON.parse(buffer.toString('utf8', LENGTH_BYTES, jsonEnd)) as Record<string, unknown>
  if (fields.kind !== 'response') return fields
  const { bodyLength, requestBodyLength, ...entry } = fields
  if (typeof bodyLength !== 'number' || typeof requestBodyLength !== 'number') throw new Error('stored entry has no body length')
  const bodyEnd = jsonEnd + bodyLength
  const end = bodyEnd + Math.max(requestBodyLength, 0)
  if (end !== buffer.byteLength) throw new Error('stored entry is truncated or has trailing bytes')
  // Views, not copies: the bytes are a fresh buffer per read (a row, a reply), which the entry now owns.
  entry.body = buffer.subarray(jsonEnd, bodyEnd)
  if (requestBodyLength >= 0) entry.requestBody = buffer.subarray(bodyEnd, end)
  return entry
}

/**
 * What a byte store returns for a value it cannot decode: no entry, so the cache's guard reads a miss (and
 * leaves the value, which may not be the cache's; a response stored under its key replaces it).
 */
const UNDECODABLE = Object.freeze({ undecodable: true })

/**
 * Decodes a stored value for a byte store's `get`. A value that is not an encoded entry comes back as a
 * marker that is no entry either, so that the cache's guard reads it as a miss.
 */
export function decodeStoredValue(bytes: Uint8Array): CacheEntry {
  try {
    return decodeEntryBytes(bytes) as CacheEntry // its fields are checked by the cache's guard
  } catch {
    return UNDECODABLE as unknown as CacheEntry
  }
}
