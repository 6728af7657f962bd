/**
 * undici passes headers in several shapes (a record, an array of pairs, a flat array of names and values,
 * an iterable such as `Headers`). The cache works on one: a plain record with lower-case names.
 */

// The shapes are those entries are stored in, so they are defined with the entries: stores know no HTTP.
import type { HeaderRecord, RequestHeaders } from '../stores/store.js'
export type { HeaderRecord, RequestHeaders } from '../stores/store.js'

type HeaderValue = string | number | boolean | readonly string[] | null | undefined
type RawHeaderInput =
  | Record<string, HeaderValue>
  | Iterable<readonly [string, HeaderValue]>
  | readonly (string | Buffer)[]
  | null
  | undefined

/** Reads request headers from any shape undici accepts into a record with lower-case names. */
export function normalizeRequestHeaders(input: unknown): RequestHeaders {
  const headers: RequestHeaders = {}
  const raw = input as RawHeaderInput
  if (raw == null) return headers
  if (Array.isArray(raw) && (raw.length === 0 || !Array.isArray(raw[0]))) {
    const flat = raw as readonly (string | Buffer)[]
    for (let index = 0; index + 1 < flat.length; index += 2) {
      appendRequestHeader(headers, String(flat[index]), String(flat[index + 1]))
    }
    return headers
  }
  const entries = isIterable(raw) ? raw : Object.entries(raw)
  for (const [name, value] of entries) {
    if (value == null) continue
    const values = Array.isArray(value) ? value : [value]
    for (const item of values) appendRequestHeader(headers, name, String(item))
  }
  return headers
}

function appendRequestHeader(headers: RequestHeaders, name: string, value: string): void {
  const lowerName = name.toLowerCase()
  const existing = headers[lowerName]
  headers[lowerName] = existing === undefined ? value : `${existing}, ${value}`
}

function isIterable(value: object): value is Iterable<readonly [string, HeaderValue]> {
  return typeof (value as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function'
}

/** The raw form undici's consumers read from `controller.rawHeaders` (fetch needs it): name, value buffers. */
export function toRawHeaders(headers: HeaderRecord): Buffer[] {
  const raw: Buffer[] = []
  for (const name in headers) {
    const value = headers[name]!
    const nameBuffer = Buffer.from(name, 'latin1')
    if (Array.isArray(value)) {
      for (const item of value) raw.push(nameBuffer, Buffer.from(item, 'latin1'))
    } else {
      raw.push(nameBuffer, Buffer.from(value, 'latin1'))
    }
  }
  return raw
}

/** A copy of fields for users' code, so that changing it changes no stored response (repeated fields' arrays too). */
export function copyHeaders(headers: HeaderRecord): HeaderRecord {
  const copy: HeaderRecord = {}
  for (const name in headers) {
    const value = headers[name]!
    copy[name] = Array.isArray(value) ? [...value] : value
  }
  return copy
}

/** One header's value as a single string: repeated fields joined with ", ". */
export function joinHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * A `Content-Length` of one valid value (RFC 9110 §8.6), as the cache reads it: a list of values, even of
 * equal ones, or anything but digits counts as no declared length.
 */
export function contentLength(value: string | string[] | undefined): number | undefined {
  const joined = joinHeader(value)
  return joined !== undefined && /^\d+$/.test(joined) ? Number(joined) : undefined
}

// RFC 9110 §7.6.1: hop-by-hop fields describe one connection and are never stored or replayed.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** The end-to-end fields of a response: hop-by-hop ones and those the Connection field names removed. */
export function withoutHopByHop(headers: HeaderRecord): HeaderRecord {
  const connectionNames = (joinHeader(headers.connection) ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
  const result: HeaderRecord = {}
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || connectionNames.includes(name)) continue
    result[name] = headers[name]!
  }
  return result
}

/** The fields other than those named (lower-case names). */
export function withoutFields(headers: HeaderRecord, names: readonly string[]): HeaderRecord {
  if (names.length === 0) return headers
  const result: HeaderRecord = {}
  for (const name in headers) if (!names.includes(name)) result[name] = headers[name]!
  return result
}
