import { describe, expect, it } from 'vitest'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { fetchText as get } from './helpers/request.js'
import { requestTwice } from './helpers/request-twice.js'
import { startVersionedOrigin } from './helpers/versioned-origin.js'

describe('storing responses', () => {
  it('never stores a no-store response', async () => {
    const { originRequests, first } = await requestTwice({ 'cache-control': 'no-store, max-age=60' })
    expect(originRequests).toBe(2)
    expect(first.headers['cache-status']).not.toMatch(/stored/)
  })

  it('never stores the response to a no-store request', async () => {
    const { originRequests } = await requestTwice({ 'cache-control': 'max-age=60' }, { requestHeaders: { 'cache-control': 'no-store' } })
    expect(originRequests).toBe(2)
  })

  it('reads no-store in a request whatever its case, and only as a directive name', async () => {
    const noStore = (value: string) => requestTwice({ 'cache-control': 'max-age=60' }, { requestHeaders: { 'cache-control': value } })
    expect((await noStore('No-Store')).originRequests).toBe(2) // RFC 9111 §5.2: directive names are case-insensitive
    expect((await noStore('max-age=0, no-store')).originRequests).toBe(2)
    expect((await noStore('x-no-store')).originRequests).toBe(1)
  })

  // Issue #17: not storable is decided before a CachePolicy is built; these verdicts must not move.
  it('stores a response whose no-store is only the argument of a qualified private or no-cache', async () => {
    const qualified = { 'cache-control': 'max-age=60, private="no-store", no-cache="no-store"' }
    expect((await requestTwice(qualified, { shared: true })).originRequests).toBe(1)
    // A private cache obeys private="…" as plain private, which it may store.
    expect((await requestTwice(qualified)).originRequests).toBe(1)
  })

  it('stores a private response in a private cache but not in a shared one', async () => {
    expect((await requestTwice({ 'cache-control': 'private, max-age=60' })).originRequests).toBe(1)
    expect((await requestTwice({ 'cache-control': 'private, max-age=60' }, { shared: true })).originRequests).toBe(2)
  })

  it('does not store a response to a request with Authorization in a shared cache, unless allowed by public', async () => {
    const requestHeaders = { authorization: 'Bearer secret' }
    expect((await requestTwice({ 'cache-control': 'max-age=60' }, { shared: true, requestHeaders })).originRequests).toBe(2)
    expect((await requestTwice({ 'cache-control': 'public, max-age=60' }, { shared: true, requestHeaders })).originRequests).toBe(1)
    expect((await requestTwice({ 'cache-control': 'max-age=60' }, { shared: false, requestHeaders })).originRequests).toBe(1)
  })

  it('stores a no-cache response but never serves it without going to the origin', async () => {
    const { originRequests, first, second } = await requestTwice({ 'cache-control': 'no-cache, max-age=60' })
    expect(first.headers['cache-status']).toMatch(/stored/)
    expect(second.body).toBe('v2')
    expect(statusOf(second.headers)).toBe('miss')
    expect(originRequests).toBe(2)
  })

  it('stores a 404 with max-age, and a 301, but not a 206 or a 500 without explicit freshness', async () => {
    expect((await requestTwice({ 'cache-control': 'max-age=60' }, { status: 404 })).originRequests).toBe(1)
    expect((await requestTwice({ 'cache-control': 'max-age=60', location: '/x' }, { status: 301 })).originRequests).toBe(1)
    expect((await requestTwice({ 'cache-control': 'max-age=60', 'content-range': 'bytes 0-1/10' }, { status: 206 })).originRequests).toBe(2)
    expect((await requestTwice({}, { status: 500 })).originRequests).toBe(2)
  })

  it('never stores Vary: * (it can match no later request)', async () => {
    const { originRequests, first } = await requestTwice({ 'cache-control': 'max-age=60', vary: '*' })
    expect(originRequests).toBe(2)
    expect(first.headers['cache-status']).not.toMatch(/stored/)
  })

  it('passes responses to other methods through untouched and never stores them', async () => {
    const origin = await startVersionedOrigin({ 'cache-control': 'max-age=60' })
    const agent = createTestAgent()
    const first = await get(origin.url, agent, { method: 'POST', body: 'a' })
    const second = await get(origin.url, agent, { method: 'POST', body: 'a' })
    expect([first.body, second.body]).toEqual(['v1', 'v2'])
    expect(first.headers['cache-status']).toBe('undici-http-cache; fwd=method')
    expect(statusOf(first.headers)).toBe('miss') // the cache took part: no stored response for its method (issue #16)
    // Nor does a POST response answer a later GET.
    expect((await get(origin.url, agent)).body).toBe('v3')
  })

  it('keeps hop-by-hop fields out of the stored response', async () => {
    const { second } = await requestTwice({ 'cache-control': 'max-age=60', connection: 'x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5' })
    expect(statusOf(second.headers)).toBe('hit')
    expect(second.headers['x-hop']).toBeUndefined()
    expect(second.headers['keep-alive']).toBeUndefined()
  })

  it('appends its Cache-Status member after those of caches nearer the origin', async () => {
    const { first, second } = await requestTwice({ 'cache-control': 'max-age=60', 'cache-status': 'cdn; hit' })
    expect(first.headers['cache-status']).toMatch(/^cdn; hit, undici-http-cache; fwd=uri-miss/)
    expect(second.headers['cache-status']).toMatch(/^cdn; hit, undici-http-cache; hit/)
  })
})
