import { describe, expect, it } from 'vitest'
import { createTestAgent } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { requestTwice } from './helpers/request-twice.js'

const IN_AN_HOUR = () => new Date(Date.now() + 3_600_000).toUTCString()

/** Whether the second of two identical requests was served from the cache. */
async function isReused(headers: Record<string, string>, options: { shared?: boolean; status?: number } = {}): Promise<boolean> {
  const { originRequests } = await requestTwice(headers, options)
  return originRequests === 1
}

describe('reading response fields as RFC 9111 does', () => {
  it('reuses a response whose Expires is a valid HTTP-date in any of its three forms', async () => {
    const future = new Date(Date.now() + 3_600_000)
    const asctime = future.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, (_all, day, date, month, year, time) => {
      return `${day} ${month} ${String(Number(date)).padStart(2, ' ')} ${time} ${year}`
    })
    expect(await isReused({ expires: future.toUTCString() })).toBe(true)
    expect(await isReused({ expires: asctime })).toBe(true)
  })

  it.each([
    ['in another zone', (date: string) => date.replace('GMT', 'UTC')],
    ['without its comma', (date: string) => date.replace(',', '')],
    ['with a one-digit hour', (date: string) => date.replace(/ \d\d:/, ' 1:')],
    ['given twice', (date: string) => `${date}, ${date}`],
  ])('treats an Expires %s as already expired', async (_what, spoil) => {
    expect(await isReused({ expires: spoil(IN_AN_HOUR()) })).toBe(false)
  })

  it('reads directive names without regard to case', async () => {
    expect(await isReused({ 'cache-control': 'No-CaChE, max-age=3600' })).toBe(false)
    expect(await isReused({ 'cache-control': 'MAX-AGE=3600' })).toBe(true)
  })

  it('ignores a directive with whitespace around "=", and counts the first of a repeated one', async () => {
    expect(await isReused({ 'cache-control': 'max-age = 3600' })).toBe(false)
    expect(await isReused({ 'cache-control': 'max-age=3600, max-age=0' })).toBe(true)
    expect(await isReused({ 'cache-control': 'max-age=0, max-age=3600' })).toBe(false)
  })

  it('counts a list-valued Age by its first member', async () => {
    expect(await isReused({ 'cache-control': 'max-age=3600', age: '7200, 0' })).toBe(false)
    expect(await isReused({ 'cache-control': 'max-age=3600', age: '0, 7200' })).toBe(true)
  })

  it('reuses a response with a qualified no-cache, leaving out the fields it names', async () => {
    const { originRequests, second } = await requestTwice({
      'cache-control': 'max-age=3600, no-cache="x-secret, x-other"',
      'x-secret': 'for the first caller only',
      'x-other': 'also',
      'x-kept': 'yes',
    })
    expect(originRequests).toBe(1)
    expect(second.headers['x-secret']).toBeUndefined()
    expect(second.headers['x-other']).toBeUndefined()
    expect(second.headers['x-kept']).toBe('yes')
  })

  it('stores any final status given explicit freshness, and none without', async () => {
    expect(await isReused({ 'cache-control': 'max-age=3600' }, { status: 503 })).toBe(true)
    expect(await isReused({ 'cache-control': 'max-age=3600' }, { status: 599 })).toBe(true)
    expect(await isReused({ 'last-modified': new Date(Date.now() - 86_400_000).toUTCString() }, { status: 599 })).toBe(false)
  })

  it('follows must-understand: no-store is ignored for a status it understands, and kept for one it does not', async () => {
    expect(await isReused({ 'cache-control': 'max-age=3600, no-store, must-understand' }, { status: 200 })).toBe(true)
    expect(await isReused({ 'cache-control': 'max-age=3600, no-store, must-understand' }, { status: 599 })).toBe(false)
    expect(await isReused({ 'cache-control': 'max-age=3600, must-understand' }, { status: 599 })).toBe(false)
    // A status it understands stays storable by the other rules only: must-understand lifts no-store, not private.
    expect(await isReused({ 'cache-control': 'max-age=3600, NO-STORE, Must-Understand, private' }, { status: 404, shared: true })).toBe(false)
    expect(await isReused({ 'cache-control': 'max-age=3600, NO-STORE, Must-Understand' }, { status: 404, shared: true })).toBe(true)
  })
})

describe('shared mode', () => {
  it('stores a response with Set-Cookie, as RFC 9111 allows a shared cache', async () => {
    expect(await isReused({ 'cache-control': 'max-age=3600', 'set-cookie': 'a=b' }, { shared: true })).toBe(true)
  })

  it('follows a valid CDN-Cache-Control instead of Cache-Control (RFC 9213), and ignores an invalid one', async () => {
    expect(await isReused({ 'cache-control': 'max-age=3600', 'cdn-cache-control': 'no-store' }, { shared: true })).toBe(false)
    expect(await isReused({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=3600' }, { shared: true })).toBe(true)
    expect(await isReused({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age="3600"' }, { shared: true })).toBe(false)
    // A private cache is no CDN: it follows Cache-Control.
    expect(await isReused({ 'cache-control': 'max-age=3600', 'cdn-cache-control': 'no-store' })).toBe(true)
    expect(await isReused({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=3600' })).toBe(false)
  })

  it('stores a response with a qualified private, leaving out the fields it names', async () => {
    const { originRequests, second } = await requestTwice(
      { 'cache-control': 'max-age=3600, private="x-user"', 'x-user': 'alice', 'x-kept': 'yes' },
      { shared: true },
    )
    expect(originRequests).toBe(1)
    expect(second.headers['x-user']).toBeUndefined()
    expect(second.headers['x-kept']).toBe('yes')
  })
})

describe('Vary matching', () => {
  it('matches selecting values that differ only in whitespace, and Accept-Language in case', async () => {
    const origin = await startOrigin((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=3600', vary: 'foo, accept-language' })
      response.end(`foo=${request.headers.foo}`)
    })
    const agent = createTestAgent()
    await get(origin.url, agent, { headers: { foo: '1,2', 'accept-language': 'en-GB' } })
    const hit = await get(origin.url, agent, { headers: { foo: ' 1, 2 ', 'accept-language': 'en-gb' } })
    expect(statusOf(hit.headers)).toBe('hit')
    expect(hit.body).toBe('foo=1,2')
    expect(origin.requests).toBe(1)
  })
})
