import { describe, expect, it } from 'vitest'
import { bodyLength, joinBody } from '../../lib/stores/body.js'
import { GuardedStore } from '../../lib/stores/guarded-store.js'
import { hasDeclaredLength } from '../../lib/rules/body-integrity.js'
import { StatsCounters } from '../../lib/stats.js'
import { ENTRY_VERSION, entrySize, type CacheEntry, type CacheStore, type ResponseEntry, type VaryEntry } from '../../lib/stores/store.js'

/** A store under test, and how to close it and remove what it left (files, keys) when the test ends. */
export interface StoreUnderTest {
  store: CacheStore
  close(): Promise<void>
}

/** When the contract's entries were made: recent, so that no store finds them out of use and purges them. */
const EPOCH = Date.now()

/** A response entry whose ETag and `createdAt` say `version`, and whose body is its last digit repeated. */
export function responseEntry(version: number, overrides: Partial<ResponseEntry> = {}): ResponseEntry {
  return {
    version: ENTRY_VERSION,
    kind: 'response',
    method: 'GET',
    url: 'http://127.0.0.1/contract',
    requestHeaders: { accept: 'text/plain' },
    status: 200,
    statusText: 'OK',
    headers: { 'content-type': 'text/plain', 'cache-control': 'max-age=60', etag: `"${version}"` },
    body: new Uint8Array(Buffer.from(String(version % 10).repeat(1000))),
    createdAt: EPOCH + version,
    initialAgeSeconds: 0,
    lifetimeSeconds: 60,
    usefulUntil: EPOCH + 3_600_000,
    policy: { v: 1, t: 1 },
    ...overrides,
  }
}

async function keysOf(store: CacheStore): Promise<string[]> {
  const keys: string[] = []
  for await (const key of await store.keys()) keys.push(key)
  return keys.sort()
}

/**
 * The contract every `CacheStore` keeps (test/stores/*.test.ts run it for each store): what `set` was given,
 * `get` returns as plain data, bytes intact; `delete`, `keys` and `clear` do what they say; an entry over
 * `maxEntrySize` is not kept; concurrent writers never leave a torn entry; and, through the cache's guard,
 * an entry of an older format version is a miss and is deleted.
 */
export function describeStoreContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`${name}: the CacheStore contract`, () => {
    async function withStore(test: (store: CacheStore) => Promise<void>): Promise<void> {
      const opened = await open()
      try {
        await test(opened.store)
      } finally {
        await opened.close()
      }
    }

    it('returns undefined for a key never set', () =>
      withStore(async (store) => {
        expect(await store.get('missing')).toBeUndefined()
      }))

    it('returns what was set: every field, and a body of all 256 byte values', () =>
      withStore(async (store) => {
        const body = new Uint8Array(Array.from({ length: 512 }, (_, index) => index % 256))
        const requestBody = new Uint8Array([0, 255, 10, 13])
        const entry = responseEntry(1, { body, requestBody, varyHeaders: { accept: 'text/plain', 'x-none': null } })
        await store.set('binary', entry)
        const read = (await store.get('binary')) as ResponseEntry
        expect({ ...read, body: [...read.body], requestBody: [...read.requestBody!] }).toEqual({ ...entry, body: [...body], requestBody: [...requestBody] })
      }))

    it('keeps large headers and repeated fields', () =>
      withStore(async (store) => {
        const entry = responseEntry(2, { headers: { 'x-large': 'h'.repeat(64 * 1024), 'set-cookie': ['a=1', 'b=2'] } })
        await store.set('headers', entry)
        expect(((await store.get('headers')) as ResponseEntry).headers).toEqual(entry.headers)
      }))

    it('keeps a Vary record as it was set', () =>
      withStore(async (store) => {
        const vary: VaryEntry = { version: ENTRY_VERSION, kind: 'vary', names: ['accept'], variants: ['k:1', 'k:2'], createdAt: EPOCH }
        await store.set('vary', vary)
        expect(await store.get('vary')).toEqual(vary)
      }))

    it('overwrites, deletes, lists keys and clears', () =>
      withStore(async (store) => {
        await store.set('a', responseEntry(1))
        await store.set('a', responseEntry(2))
        await store.set('b', responseEntry(3))
        expect(((await store.get('a')) as ResponseEntry).createdAt).toBe(responseEntry(2).createdAt)
        expect(await keysOf(store)).toEqual(['a', 'b'])
        await store.delete('a')
        await store.delete('never-set')
        expect(await store.get('a')).toBeUndefined()
        expect(await keysOf(store)).toEqual(['b'])
        await store.clear()
        expect(await keysOf(store)).toEqual([])
      }))

    it('keeps an entry of exactly maxEntrySize and refuses a larger one, dropping what the key held', () =>
      withStore(async (store) => {
        const maxEntrySize = store.maxEntrySize
        expect(maxEntrySize).toBeGreaterThan(0)
        const sized = (extra: number) => {
          const entry = responseEntry(4, { body: new Uint8Array(0) })
          return responseEntry(4, { body: new Uint8Array(maxEntrySize! - entrySize(entry) + extra) })
        }
        await store.set('at-limit', sized(0))
        expect(bodyLength(((await store.get('at-limit')) as ResponseEntry).body)).toBe(bodyLength(sized(0).body))
        await store.set('at-limit', sized(1))
        expect(await store.get('at-limit')).toBeUndefined()
      }))

    it('never returns a torn entry while one key is written and read concurrently', () =>
      withStore(async (store) => {
        const operations: Array<Promise<unknown>> = []
        for (let version = 0; version < 40; version++) {
          operations.push(Promise.resolve(store.set('contended', responseEntry(version))))
          operations.push(Promise.resolve(store.get('contended')))
        }
        const reads = (await Promise.all(operations)).filter((value): value is ResponseEntry => value !== undefined)
        for (const read of [...reads, (await store.get('contended')) as ResponseEntry]) {
          const version = read.createdAt - EPOCH
          expect(read.headers.etag).toBe(`"${version}"`)
          expect(Buffer.from(joinBody(read.body)).toString()).toBe(String(version % 10).repeat(1000))
        }
      }))

    it('through the cache guard, an entry of an older format version is a miss and is deleted', () =>
      withStore(async (store) => {
        const guarded = new GuardedStore(store, { stats: new StatsCounters(), timeoutMs: 1000, isIntact: hasDeclaredLength })
        await store.set('old', { ...responseEntry(5), version: 2 } as unknown as CacheEntry)
        expect(await guarded.get('old')).toBeUndefined()
        await expect.poll(async () => store.get('old')).toBeUndefined()
      }))
  })
}
