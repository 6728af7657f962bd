/**
 * The options of the built-in stores, with their defaults; every store option `TypeError` is thrown here.
 */
import { checkOptionsObject, checkPositiveInteger, describe } from '../option-checks.js'

const MIB = 1024 * 1024

/** Options of `MemoryStore`. */
export interface MemoryStoreOptions {
  /** The most bytes of entries held at once (body, headers and a fixed part per entry). Default 64 MiB. */
  maxSize?: number
  /** The largest single entry stored, in bytes; larger responses pass through unstored. Default 8 MiB. */
  maxEntrySize?: number
  /** The most entries held at once, whatever their size. Default: no limit besides `maxSize`. */
  maxCount?: number
}

export function resolveMemoryStoreOptions(input: unknown): Required<Omit<MemoryStoreOptions, 'maxCount'>> & {
  maxCount?: number
} {
  const options = checkOptionsObject('MemoryStore options', input, ['maxSize', 'maxEntrySize', 'maxCount'])
  const { maxSize, maxEntrySize } = checkSizes('MemoryStore', options, 64 * MIB)
  const maxCount =
    options.maxCount === undefined ? undefined : checkPositiveInteger('MemoryStore options.maxCount', options.maxCount, 'entries')
  return { maxSize, maxEntrySize, ...(maxCount === undefined ? {} : { maxCount }) }
}

/** Options of `SqliteStore`. */
export interface SqliteStoreOptions {
  /** The database file (created if missing), or `':memory:'` for a database that lives as long as the store. */
  path: string
  /** The most bytes of entries kept in the file (body, headers and a fixed part per entry). Default 256 MiB. */
  maxSize?: number
  /** The largest single entry stored, in bytes; larger responses pass through unstored. Default 8 MiB. */
  maxEntrySize?: number
}

export function resolveSqliteStoreOptions(input: unknown): Required<SqliteStoreOptions> {
  if (input === undefined) throw new TypeError('SqliteStore options must be an object with a path, received undefined')
  const options = checkOptionsObject('SqliteStore options', input, ['path', 'maxSize', 'maxEntrySize'])
  if (typeof options.path !== 'string' || options.path === '') {
    throw new TypeError(`SqliteStore options.path must be a file path or ":memory:", received ${describe(options.path)}`)
  }
  const { maxSize, maxEntrySize } = checkSizes('SqliteStore', options, 256 * MIB)
  return { path: options.path, maxSize, maxEntrySize }
}

/** Options of `RedisStore`. */
export interface RedisStoreOptions {
  /** A node-redis (`redis` v5 and later) or ioredis client, created and connected by you; the store never closes it. */
  client: unknown
  /**
   * Put before every key, so that several caches (or other data) can share one Redis. Every key under it is
   * the cache's: `clear()` deletes them all, so no other data may use a key that starts with it. Not empty.
   * Default `'undici-http-cache:'`.
   */
  prefix?: string
  /** The largest single entry stored, in bytes; larger responses pass through unstored. Default 8 MiB. */
  maxEntrySize?: number
}

export function resolveRedisStoreOptions<Connection>(
  input: unknown,
  connectionOf: (client: unknown) => Connection | undefined,
): { connection: Connection; prefix: string; maxEntrySize: number } {
  if (input === undefined) throw new TypeError('RedisStore options must be an object with a client, received undefined')
  const options = checkOptionsObject('RedisStore options', input, ['client', 'prefix', 'maxEntrySize'])
  const connection = connectionOf(options.client)
  if (connection === undefined) {
    throw new TypeError(`RedisStore options.client must be a node-redis or ioredis client, received ${describe(options.client)}`)
  }
  checkNoKeyPrefix(options.client)
  const prefix = options.prefix ?? 'undici-http-cache:'
  // An empty prefix would make every key in the database the cache's: clear() would delete them all.
  if (typeof prefix !== 'string' || prefix === '') {
    throw new TypeError(`RedisStore options.prefix must be a non-empty string, received ${describe(prefix)}`)
  }
  const maxEntrySize = checkPositiveInteger('RedisStore options.maxEntrySize', options.maxEntrySize ?? 8 * MIB, 'bytes')
  return { connection, prefix, maxEntrySize }
}

/**
 * ioredis puts a client's `keyPrefix` before the keys of GET, SET and DEL, but neither before SCAN's pattern
 * nor takes it off the keys SCAN returns: `urls()`, `delete()` and `clear()` would find nothing. Refused
 * rather than worked around, as a workaround would hang on which commands ioredis prefixes, and fail
 * silently again if that changed; the store's own `prefix` does the same job.
 */
function checkNoKeyPrefix(client: unknown): void {
  const keyPrefix = (client as { options?: { keyPrefix?: unknown } }).options?.keyPrefix
  if (keyPrefix === undefined || keyPrefix === null || String(keyPrefix) === '') return
  throw new TypeError(
    `RedisStore options.client must not have an ioredis keyPrefix (SCAN does not apply it): use a client without one, ` +
      `and options.prefix instead, received keyPrefix ${describe(String(keyPrefix))}`,
  )
}

/** `maxSize` and `maxEntrySize` of a store, with their defaults; an entry limit may not exceed the store's. */
function checkSizes(storeName: string, options: Record<string, unknown>, defaultMaxSize: number): { maxSize: number; maxEntrySize: number } {
  const maxSize = checkPositiveInteger(`${storeName} options.maxSize`, options.maxSize ?? defaultMaxSize, 'bytes')
  const maxEntrySize = checkPositiveInteger(`${storeName} options.maxEntrySize`, options.maxEntrySize ?? Math.min(8 * MIB, maxSize), 'bytes')
  if (maxEntrySize > maxSize) {
    throw new TypeError(`${storeName} options.maxEntrySize (${maxEntrySize}) must not exceed options.maxSize (${maxSize})`)
  }
  return { maxSize, maxEntrySize }
}
