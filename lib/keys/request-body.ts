/**
 * Request bodies of the methods cached with their body in the key (`methods: ['GET', 'HEAD', 'POST']`):
 * read whole before the request is sent, so that the key can be computed, then sent as those bytes; and
 * normalised, so that bodies that mean the same share a key and what is stored holds no ignored member and
 * no redacted value.
 */
import { Blob } from 'node:buffer'
import type { Readable } from 'node:stream'
import type { ParameterRules } from './redaction.js'

/**
 * Bodies larger than this are not read for a key: the request goes to the origin uncached, its body
 * streamed as the caller gave it. Keyed bodies are queries, not uploads.
 */
export const MAX_KEYED_BODY_BYTES = 1024 * 1024

export type ReadBody =
  | { read: 'whole'; bytes: Uint8Array }
  /** Not keyable (too large, or a form undici encodes itself); `body` replaces the original if any was consumed. */
  | { read: 'not-keyable'; body: unknown }

/**
 * Reads a dispatch body (string, bytes, Blob, stream or async iterable) whole, up to `maxBytes`.
 * A body found too large while streaming is handed back as an iterable of what was read and the rest,
 * so that the request can still be sent unchanged. `signal` (the caller's abort) stops the reading.
 */
export async function readRequestBody(
  body: unknown,
  { maxBytes = MAX_KEYED_BODY_BYTES, signal }: { maxBytes?: number; signal?: AbortSignal } = {},
): Promise<ReadBody> {
  signal?.throwIfAborted()
  if (body === null || body === undefined) return { read: 'whole', bytes: new Uint8Array(0) }
  if (typeof body === 'string') return bounded(Buffer.from(body), body, maxBytes)
  if (body instanceof Uint8Array) return bounded(body, body, maxBytes)
  if (body instanceof ArrayBuffer) return bounded(new Uint8Array(body), body, maxBytes)
  if (body instanceof Blob || isWebBlob(body)) {
    const blob = body as Blob
    if (blob.size > maxBytes) return { read: 'not-keyable', body }
    return { read: 'whole', bytes: new Uint8Array(await blob.arrayBuffer()) }
  }
  if (isAsyncIterable(body)) return readIterable(body, maxBytes, signal)
  return { read: 'not-keyable', body } // FormData and anything undici encodes itself
}

function bounded(bytes: Uint8Array, body: unknown, maxBytes: number): ReadBody {
  return bytes.byteLength > maxBytes ? { read: 'not-keyable', body } : { read: 'whole', bytes }
}

async function readIterable(body: AsyncIterable<unknown>, maxBytes: number, signal: AbortSignal | undefined): Promise<ReadBody> {
  const iterator = body[Symbol.asyncIterator]()
  // On abort a stream is destroyed, as undici destroys a body it stops sending, so that a read waiting on
  // a stalled upload ends at once; any other iterable is read no further than the chunk it is producing.
  const stop = (): void => {
    ;(body as Partial<Readable>).destroy?.(signal!.reason)
  }
  signal?.addEventListener('abort', stop, { once: true })
  try {
    const chunks: Uint8Array[] = []
    let size = 0
    for (;;) {
      const next = await iterator.next()
      signal?.throwIfAborted()
      if (next.done) return { read: 'whole', bytes: Buffer.concat(chunks, size) }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : (next.value as Uint8Array)
      chunks.push(chunk)
      size += chunk.byteLength
      if (size > maxBytes) return { read: 'not-keyable', body: resume(chunks, iterator) }
    }
  } finally {
    signal?.removeEventListener('abort', stop)
  }
}

/** What was read, then the rest of the iterator: the body as the caller gave it. */
async function* resume(chunks: Uint8Array[], iterator: AsyncIterator<unknown>): AsyncGenerator<unknown> {
  yield* chunks
  for (;;) {
    const next = await iterator.next()
    if (next.done) return
    yield next.value
  }
}

/**
 * The body as a key and a stored entry hold it. JSON (by `Content-Type`) is re-serialised with object
 * members sorted, ignored members removed and redacted ones' values replaced by their digest, at any depth;
 * a form (`application/x-www-form-urlencoded`) has its fields sorted by name, ignored ones removed and
 * redacted ones' values digested; any other body, or one that does not parse as its type says, is kept
 * byte for byte.
 */
export function normalizeBody(bytes: Uint8Array, contentType: string | undefined, rules: ParameterRules): Uint8Array {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase() ?? ''
  if (mediaType === 'application/json' || mediaType.endsWith('+json')) {
    let value: unknown
    try {
      value = JSON.parse(Buffer.from(bytes).toString('utf8'), keepNumberAsWritten)
    } catch {
      return bytes
    }
    return Buffer.from(JSON.stringify(normalizeJson(value, rules)))
  }
  if (mediaType === 'application/x-www-form-urlencoded') {
    return Buffer.from(normalizeParameters(Buffer.from(bytes).toString('utf8'), rules))
  }
  return bytes
}

/**
 * Query or form parameters (`a=1&b=2`) without the ignored ones, redacted ones' values digested, sorted by
 * name; the values of one name keep their order, which may carry meaning. Each other pair is kept as
 * written, so that no two parameters that an origin could tell apart (`%20` and `+`, say) become one.
 */
export function normalizeParameters(raw: string, rules: ParameterRules): string {
  if (!raw.includes('&')) return raw === '' ? '' : keptPair(raw, nameOf(raw).toLowerCase(), rules) // one pair: nothing to sort
  if (isNormalized(raw, rules)) return raw
  const pairs: Array<{ pair: string; name: string }> = []
  for (const written of raw.split('&')) {
    if (written === '') continue
    const name = nameOf(written)
    const pair = keptPair(written, name.toLowerCase(), rules)
    if (pair !== '') pairs.push({ pair, name })
  }
  pairs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return pairs.map(({ pair }) => pair).join('&')
}

/**
 * Whether a query (or form body) is normalised as it is written: no empty pair, names in order, none ignored
 * or redacted. Most are, and this reads them without splitting them into pairs to sort and join again.
 */
function isNormalized(raw: string, rules: ParameterRules): boolean {
  let previousName = ''
  for (let start = 0; start <= raw.length; ) {
    let end = raw.indexOf('&', start)
    if (end === -1) end = raw.length
    const written = raw.slice(start, end)
    if (written === '') return false
    const name = nameOf(written)
    if (name < previousName || keptPair(written, name.toLowerCase(), rules) !== written) return false
    previousName = name
    start = end + 1
  }
  return true
}

/**
 * A pair as keys and stored URLs hold it: '' when ignored, its value (as written) digested when redacted.
 * Redaction also reads pairs the origin may split further (issue #16 review): after a `;` (`view=full;
 * api_key=…`, a separator some servers accept) and a name's bracketed parts (`api_key[]`,
 * `auth[access_token]`, as PHP and Rails read them). Only values are digested, so what the key and the
 * URL keep tells requests apart exactly as before. Ignoring, which merges requests, reads names as written.
 */
function keptPair(pair: string, lowerCaseName: string, rules: ParameterRules): string {
  if (rules.ignored.has(lowerCaseName)) return ''
  if (!pair.includes(';')) return redactedPair(pair, lowerCaseName, rules)
  return pair
    .split(';')
    .map((part, index) => redactedPair(part, index === 0 ? lowerCaseName : nameOf(part).toLowerCase(), rules))
    .join(';')
}

/** A pair with its value (as written) digested if its name, or any bracketed part of it, is redacted. */
function redactedPair(pair: string, lowerCaseName: string, rules: ParameterRules): string {
  if (!isRedactedName(lowerCaseName, rules.redacted)) return pair
  const valueAt = pair.indexOf('=')
  return valueAt === -1 ? pair : `${pair.slice(0, valueAt + 1)}${rules.redact(pair.slice(valueAt + 1))}`
}

function isRedactedName(lowerCaseName: string, redacted: ReadonlySet<string>): boolean {
  if (redacted.has(lowerCaseName)) return true
  return lowerCaseName.includes('[') && lowerCaseName.split(/[[\]]+/).some((part) => redacted.has(part))
}

/** A pair's name, decoded (`+` is a space), for comparing and sorting. */
function nameOf(pair: string): string {
  const equals = pair.indexOf('=')
  return decodeName(equals === -1 ? pair : pair.slice(0, equals))
}

function decodeName(name: string): string {
  if (!name.includes('%') && !name.includes('+')) return name // nothing to decode: most names
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '))
  } catch {
    return name // a malformed escape is compared as written
  }
}

/** JSON's raw values (ES2025, Node 21+), not yet in TypeScript's library. */
const { rawJSON, isRawJSON } = JSON as unknown as { rawJSON(text: string): object; isRawJSON(value: unknown): boolean }

/**
 * A number stays as written: read as a JavaScript number, 9007199254740993 would become 9007199254740992
 * and 1e400 Infinity (written back as null), and bodies an origin tells apart would share a key.
 */
function keepNumberAsWritten(_name: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === 'number' && context?.source !== undefined ? rawJSON(context.source) : value
}

/**
 * A JSON value normalised. Objects are built without a prototype: a member named `__proto__` (which
 * `JSON.parse` reads as an own member) is then kept as one, where assigning it to a plain object would set
 * the prototype and drop the member from the key (issue #16 review: Bob's `__proto__.api_key` was keyed as
 * Alice's). Of repeated member names the last is kept, as `JSON.parse` does and most origins' parsers
 * (JavaScript, Python, Go, Jackson) do, so that the key says what the origin reads.
 */
function normalizeJson(value: unknown, rules: ParameterRules): unknown {
  if (Array.isArray(value)) return value.map((item) => normalizeJson(item, rules))
  if (value === null || typeof value !== 'object' || isRawJSON(value)) return value
  const sorted: Record<string, unknown> = Object.create(null)
  for (const name of Object.keys(value).sort()) {
    const lowerCaseName = name.toLowerCase()
    if (rules.ignored.has(lowerCaseName)) continue
    const member = normalizeJson((value as Record<string, unknown>)[name], rules)
    sorted[name] = rules.redacted.has(lowerCaseName) ? redactedMember(member, rules) : member
  }
  return sorted
}

/**
 * A redacted member's value as a digest: of the string itself, or of any other value as normalised JSON
 * (so a token object digests alike whatever its member order). A digest read back from a store
 * (`forStoredData`) is a string, and is kept.
 */
function redactedMember(member: unknown, rules: ParameterRules): string {
  return rules.redact(typeof member === 'string' ? member : JSON.stringify(member))
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof (value as Partial<AsyncIterable<unknown>>)?.[Symbol.asyncIterator] === 'function'
}

function isWebBlob(value: unknown): boolean {
  return typeof (value as { arrayBuffer?: unknown }).arrayBuffer === 'function' && typeof (value as { size?: unknown }).size === 'number'
}
