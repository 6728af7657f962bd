import { describe, expect, it } from 'vitest'
import { MemoryStore, type CacheStore, type ResponseEntry } from '../lib/index.js'
import { MapStore } from './helpers/map-store.js'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { fetchText as get } from './helpers/request.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

/** A store whose every call fails the way `fail` says. */
function failingStore(fail: () => never | Promise<never>): CacheStore {
  return { get: fail, set: fail, delete: fail, keys: fail, clear: fail }
}

describe('store failures', () => {
  it.each([
    ['throws', () => failingStore(() => { throw new Error('store is down') })],
    ['rejects', () => failingStore(() => Promise.reject(new Error('store is down')))],
  ])('a store that %s never fails the request: it goes to the origin', async (_name, makeStore) => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent({ store: makeStore() })
    const first = await get(origin.url, agent)
    const second = await get(origin.url, agent)
    expect([first.status, second.status]).toEqual([200, 200])
    expect([first.body, second.body]).toEqual(['v1', 'v2'])
    expect(statusOf(second.headers)).toBe('miss')
  })

  it('treats what is not an entry of this format version as a miss, and deletes it', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const store = new MapStore()
    const agent = createTestAgent({ store })
    await get(origin.url, agent)
    const [key] = store.entries.keys()
    store.entries.set(key!, { ...(store.entries.get(key!) as object), version: 0 })
    expect((await get(origin.url, agent)).body).toBe('v2')
    expect(store.deleted).toEqual([key])
    store.entries.set(key!, 'garbage')
    expect((await get(origin.url, agent)).body).toBe('v3')
  })

  it('never serves an entry stored for another URL under the same key', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const inner = new MemoryStore()
    const agent = createTestAgent({ store: inner })
    await get(`${origin.origin}/a`, agent)
    const [key] = [...inner.keys()]
    const stored = inner.get(key!) as ResponseEntry
    inner.set(key!, { ...stored, url: `${origin.origin}/other` })
    const response = await get(`${origin.origin}/a`, agent)
    expect(response.body).toBe('v2')
  })
})
