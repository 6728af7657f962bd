import { decodeStoredValue, encodeEntry } from './entry-codec.js'
import { resolveRedisStoreOptions, type RedisStoreOptions } from './store-options.js'
import { entrySize, retainUntil, type CacheEntry, type CacheStore } from './store.js'

/** Keys asked for per SCAN step, and deleted per DEL. */
const SCAN_COUNT = 500
/**
 * The longest expiry an entry is given: 2^31 seconds (68 years), past which RFC 9111 §1.2.2 reads any
 * delta-seconds as 2^31 anyway. Redis refuses a longer one that overflows its clock, and the entry would
 * not be stored at all.
 */
const MAX_TTL_MS = 2 ** 31 * 1000

/** The few commands the store sends, over node-redis or ioredis. */
interface RedisConnection {
  /** Whether the client is connected now; a store that is not fails at once rather than queueing. */
  readonly isReady: boolean
  getBuffer(key: string): Promise<Buffer | null>
  send(command: Array<string | Buffer>): Promise<unknown>
}

/** The parts of the two clients the store uses (a client the user created, connected by the user). */
type NodeRedisClient = {
  isReady: boolean
  sendCommand(args: Array<string | Buffer>, options?: { typeMapping?: Record<number, unknown> }): Promise<unknown>
}
type IoRedisClient = {
  status: string
  getBuffer(key: string): Promise<Buffer | null>
  call(command: string, ...args: Array<string | Buffer>): Promise<unknown>
}

// RESP3's type byte for a bulk string ('$'): node-redis maps it to Buffer instead of string when asked.
const BLOB_STRING = 36

function redisConnectionOf(client: unknown): RedisConnection | undefined {
  const candidate = client as Partial<NodeRedisClient & IoRedisClient> | null
  if (typeof candidate?.getBuffer === 'function' && typeof candidate.call === 'function') {
    const ioredis = client as IoRedisClient
    return {
      get isReady() {
        return ioredis.status === 'ready'
      },
      getBuffer: (key) => ioredis.getBuffer(key),
      send: ([command, ...args]) => ioredis.call(String(command), ...args),
    }
  }
  if (typeof candidate?.sendCommand === 'function') {
    const nodeRedis = client as NodeRedisClient
    return {
      get isReady() {
        return nodeRedis.isReady
      },
      getBuffer: (key) => nodeRedis.sendCommand(['GET', key], { typeMapping: { [BLOB_STRING]: Buffer } }) as Promise<Buffer | null>,
      send: (command) => nodeRedis.sendCommand(command),
    }
  }
  return undefined
}

/**
 * A store in Redis, shared by every process and host that uses the same server and prefix. Takes a client
 * the user created and connected: node-redis (`redis` v5 and later) or ioredis. Entries are stored as
 * bytes (no base64) under `prefix` + key, and expire in Redis by themselves once of no use (the entry's
 * `usefulUntil`, which the cache works out: freshness, stale windows, and retention for revalidation).
 * While the client is not connected, every call fails at once (the cache then goes to the origin) rather
 * than waiting in the client's offline queue; caching resumes when the client has reconnected.
 */
export class RedisStore implements CacheStore {
  readonly maxEntrySize: number
  /** What every key this store writes starts with: `options.prefix`, `'undici-http-cache:'` by default. */
  readonly prefix: string
  readonly #connection: RedisConnection

  constructor(options: RedisStoreOptions) {
    const resolved = resolveRedisStoreOptions(options, redisConnectionOf)
    this.maxEntrySize = resolved.maxEntrySize
    this.prefix = resolved.prefix
    this.#connection = resolved.connection
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    const bytes = await this.#ready().getBuffer(this.prefix + key)
    return bytes === null ? undefined : decodeStoredValue(bytes)
  }

  async set(key: string, entry: CacheEntry): Promise<void> {
    const ttlMs = Math.min(Math.ceil(retainUntil(entry) - Date.now()), MAX_TTL_MS)
    // Too large, or of no use already: a newer response that is not kept leaves no older one behind.
    if (entrySize(entry) > this.maxEntrySize || ttlMs <= 0) return this.delete(key)
    await this.#ready().send(['SET', this.prefix + key, encodeEntry(entry), 'PX', String(ttlMs)])
  }

  async delete(key: string): Promise<void> {
    await this.#ready().send(['DEL', this.prefix + key])
  }

  /** SCAN, never KEYS: it walks the keyspace in steps without blocking the server. */
  async *keys(): AsyncGenerator<string> {
    for await (const keys of this.#scan()) for (const key of keys) yield key.slice(this.prefix.length)
  }

  async clear(): Promise<void> {
    for await (const keys of this.#scan()) if (keys.length > 0) await this.#ready().send(['DEL', ...keys])
  }

  async *#scan(): AsyncGenerator<string[]> {
    const pattern = `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}*`
    let cursor = '0'
    do {
      const [next, keys] = (await this.#ready().send(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(SCAN_COUNT)])) as [string, string[]]
      cursor = String(next)
      yield keys.map(String)
    } while (cursor !== '0')
  }

  #ready(): RedisConnection {
    if (!this.#connection.isReady) throw new Error('the Redis client is not connected')
    return this.#connection
  }
}
