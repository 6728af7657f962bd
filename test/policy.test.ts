import CachePolicy from 'http-cache-semantics'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseCacheControl, parseVary } from '../lib/rules/directives.js'
import { decide, evaluateResponse, revalidationHeaders, staleIfErrorAllows } from '../lib/rules/policy.js'
import { effectiveCacheControl } from '../lib/rules/response-fields.js'
import { ENTRY_VERSION, type ResponseEntry } from '../lib/stores/store.js'

const NOW = Date.UTC(2026, 0, 1, 12)

function entryWith(headers: Record<string, string>, numbers: Partial<ResponseEntry> = {}): ResponseEntry {
  return {
    version: ENTRY_VERSION,
    kind: 'response',
    method: 'GET',
    url: 'http://127.0.0.1/',
    requestHeaders: {},
    status: 200,
    statusText: 'OK',
    headers,
    body: new Uint8Array(0),
    createdAt: NOW,
    initialAgeSeconds: 0,
    lifetimeSeconds: 60,
    policy: {},
    ...numbers,
  }
}

const request = (headers: Record<string, string> = {}) => ({ method: 'GET', url: 'http://127.0.0.1/', headers })

describe('parseCacheControl', () => {
  it('reads names case-insensitively, unquotes arguments and keeps the first of a repeated directive', () => {
    const directives = parseCacheControl('Max-Age=60, no-cache="set-cookie, x-a", max-age=5, private')
    expect(directives.get('max-age')).toBe('60')
    expect(directives.get('no-cache')).toBe('set-cookie, x-a')
    expect(directives.get('private')).toBe(true)
  })

  it('never throws, whatever the field holds', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (value) => {
      expect(() => parseCacheControl(value)).not.toThrow()
    }))
  })
})

describe('decide', () => {
  it('serves a fresh entry and revalidates a stale one', () => {
    const entry = entryWith({})
    expect(decide(entry, request(), { shared: false, now: NOW + 59_000, missReason: 'uri-miss' }).action).toBe('serve')
    expect(decide(entry, request(), { shared: false, now: NOW + 60_000, missReason: 'uri-miss' })).toEqual({
      action: 'revalidate',
      entry,
      reason: 'stale',
    })
  })

  it('serves stale and revalidates behind within stale-while-revalidate, unless the response forbids stale', () => {
    const at = (cacheControl: string, elapsedMs: number, shared = false) =>
      decide(entryWith({ 'cache-control': cacheControl }), request(), { shared, now: NOW + elapsedMs, missReason: 'uri-miss' }).action
    expect(at('max-age=60, stale-while-revalidate=30', 89_000)).toBe('serve-stale-and-revalidate')
    expect(at('max-age=60, stale-while-revalidate=30', 91_000)).toBe('revalidate')
    expect(at('max-age=60, stale-while-revalidate=30, must-revalidate', 70_000)).toBe('revalidate')
    expect(at('max-age=60, stale-while-revalidate=30, proxy-revalidate', 70_000)).toBe('serve-stale-and-revalidate')
    expect(at('max-age=60, stale-while-revalidate=30, proxy-revalidate', 70_000, true)).toBe('revalidate')
  })

  it('never throws and never serves a stale entry without max-stale, whatever the request directives', () => {
    const directive = fc.constantFrom('no-cache', 'no-store', 'max-age', 'min-fresh', 'only-if-cached', 'max-stale', 'junk', '')
    const argument = fc.oneof(fc.constant(''), fc.nat().map(String), fc.string())
    const field = fc.array(fc.tuple(directive, argument).map(([name, value]) => (value === '' ? name : `${name}=${value}`))).map((parts) => parts.join(', '))
    fc.assert(fc.property(field, fc.integer({ min: 0, max: 200_000 }), (cacheControl, elapsedMs) => {
      const decision = decide(entryWith({}), request({ 'cache-control': cacheControl }), { shared: false, now: NOW + elapsedMs, missReason: 'uri-miss' })
      if (decision.action === 'serve' && elapsedMs >= 60_000) expect(cacheControl).toContain('max-stale')
    }))
  })
})

describe('staleIfErrorAllows', () => {
  const allows = (
    cacheControl: string,
    elapsedMs: number,
    { requestCacheControl, staleIfError, shared = false }: { requestCacheControl?: string; staleIfError?: boolean | number; shared?: boolean } = {},
  ) =>
    staleIfErrorAllows(
      entryWith({ 'cache-control': cacheControl }),
      request(requestCacheControl === undefined ? {} : { 'cache-control': requestCacheControl }),
      { shared, now: NOW + elapsedMs, staleIfError },
    )

  it("takes the widest of the response's directive, the request's directive and the option", () => {
    expect(allows('max-age=60', 70_000)).toBe(false)
    expect(allows('max-age=60, stale-if-error=20', 80_000)).toBe(true)
    expect(allows('max-age=60, stale-if-error=20', 81_000)).toBe(false)
    expect(allows('max-age=60', 80_000, { requestCacheControl: 'stale-if-error=20' })).toBe(true)
    expect(allows('max-age=60', 80_000, { staleIfError: 20 })).toBe(true)
    expect(allows('max-age=60', 81_000, { staleIfError: 20 })).toBe(false)
    expect(allows('max-age=60', 10_000_000, { staleIfError: true })).toBe(true)
  })

  it('is forbidden by must-revalidate and no-cache, by proxy-revalidate and s-maxage when shared, and by the option false', () => {
    expect(allows('max-age=60, must-revalidate, stale-if-error=999', 70_000)).toBe(false)
    expect(allows('no-cache, stale-if-error=999', 70_000)).toBe(false)
    expect(allows('max-age=60, must-revalidate', 70_000, { staleIfError: true })).toBe(false)
    expect(allows('max-age=60, proxy-revalidate, stale-if-error=999', 70_000)).toBe(true)
    expect(allows('max-age=60, proxy-revalidate, stale-if-error=999', 70_000, { shared: true })).toBe(false)
    expect(allows('s-maxage=60, stale-if-error=999', 70_000, { shared: true })).toBe(false)
    expect(allows('max-age=60, stale-if-error=999', 70_000, { staleIfError: false })).toBe(false)
  })
})

describe('evaluateResponse', () => {
  it('never throws on malformed Cache-Control, Expires, Date, Age or Vary', () => {
    const header = fc.oneof(fc.string(), fc.constantFrom('', ' ', ',', '=', '"', 'max-age=', 'max-age=-1', '-1', 'NaN', '1e9'))
    fc.assert(fc.property(header, header, header, header, header, (cacheControl, expires, date, age, vary) => {
      const response = { status: 200, headers: { 'cache-control': cacheControl, expires, date, age, vary } }
      const evaluated = evaluateResponse(request(), response, { shared: false, now: NOW })
      if (evaluated) {
        expect(Number.isFinite(evaluated.lifetimeSeconds)).toBe(true)
        expect(Number.isFinite(evaluated.initialAgeSeconds)).toBe(true)
      }
    }))
  })

  it('never reaches Object.prototype through Vary: __proto__ (found by the property above)', () => {
    const evaluated = evaluateResponse(request(), { status: 200, headers: { 'cache-control': 'max-age=60', vary: '__proto__, constructor' } }, { shared: false, now: NOW })
    expect(evaluated?.varyNames).toEqual(['__proto__', 'constructor'])
  })

  it('ignores a malformed Age rather than trusting it', () => {
    const evaluated = evaluateResponse(request(), { status: 200, headers: { 'cache-control': 'max-age=60', age: '-30' } }, { shared: false, now: NOW })
    expect(evaluated?.initialAgeSeconds).toBe(0)
  })

  it('adds the time the request took to the Age field, as the response aged on its way (RFC 9111 §4.2.3)', () => {
    const headers = { 'cache-control': 'max-age=600', age: '30', date: new Date(NOW).toUTCString() }
    const evaluated = evaluateResponse(request(), { status: 200, headers }, { shared: false, now: NOW, requestTime: NOW - 1500 })
    expect(evaluated?.initialAgeSeconds).toBe(31.5)
  })

  it('keeps no request headers in the stored policy: it is given the request\'s own when read', () => {
    const evaluated = evaluateResponse(
      request({ 'accept-language': 'en', authorization: 'secret' }),
      { status: 200, headers: { 'cache-control': 'max-age=60', vary: 'Accept-Language' } },
      { shared: false, now: NOW },
    )
    expect(evaluated?.policy.reqh).toBeUndefined() // emptied, so nothing of the request is held
    expect(JSON.stringify(evaluated?.policy)).not.toContain('secret')
    expect(evaluated?.varyNames).toEqual(['accept-language'])
  })
})

describe('effectiveCacheControl', () => {
  it('answers a field value it read before as it did, for each status and cache mode apart, and the answer cannot be changed', () => {
    const field = { 'cache-control': 'must-understand, no-store, private="x-user", no-cache="x-debug"' }
    for (let round = 0; round < 2; round++) {
      expect(effectiveCacheControl(200, field, false)).toMatchObject({ members: ['must-understand', 'private="x-user"'], omittedFields: ['x-debug'] })
      expect(effectiveCacheControl(299, field, false)).toMatchObject({ members: ['must-understand', 'private="x-user"', 'no-store'], omittedFields: ['x-debug'] })
      expect(effectiveCacheControl(200, field, true)).toMatchObject({ members: ['must-understand'], omittedFields: ['x-user', 'x-debug'] })
      expect(effectiveCacheControl(299, field, true)).toMatchObject({ members: ['must-understand', 'no-store'], omittedFields: ['x-user', 'x-debug'] })
    }
    expect(effectiveCacheControl(200, { 'cache-control': 'max-age=60, proxy-revalidate' }, true).policyField).toBe('max-age=60')
    const answer = effectiveCacheControl(200, field, false)
    expect(() => (answer.members as string[]).push('public')).toThrow(TypeError)
    expect(() => (answer.omittedFields as string[]).push('x-other')).toThrow(TypeError)
  })
})

describe('the stored policy', () => {
  const VALIDATORS = { etag: '"v1"', 'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT' }
  const CONDITIONS = { 'if-none-match': '"v1"', 'if-modified-since': 'Thu, 01 Jan 2026 00:00:00 GMT' }

  /** The entry `evaluateResponse` makes of a response to a GET with `requestHeaders`, as tee.ts stores it. */
  function storedEntry(status: number, headers: Record<string, string>, requestHeaders: Record<string, string> = {}, shared = false): ResponseEntry {
    const evaluated = evaluateResponse(request(requestHeaders), { status, headers }, { shared, now: NOW })
    expect(evaluated).toBeDefined()
    return entryWith(headers, { status, lifetimeSeconds: evaluated!.lifetimeSeconds, policy: evaluated!.policy })
  }

  it('is one object shared by the entries the entry itself says everything about (issue #17)', () => {
    const first = storedEntry(200, { 'cache-control': 'max-age=60', ...VALIDATORS })
    const second = storedEntry(404, { 'cache-control': 'max-age=5, must-revalidate', 'content-type': 'text/plain' })
    expect(first.policy).toBe(second.policy)
    expect(revalidationHeaders(first, request())).toEqual(CONDITIONS)
  })

  it('revalidates with validators a response of a status judged as a 200, and one to a request with Host', () => {
    const judgedAs200 = storedEntry(299, { 'cache-control': 'max-age=60', ...VALIDATORS })
    expect(revalidationHeaders(judgedAs200, request())).toEqual(CONDITIONS)
    const withHost = storedEntry(200, { 'cache-control': 'max-age=60', ...VALIDATORS }, { host: 'example.com' })
    expect(revalidationHeaders(withHost, request({ host: 'example.com' }))).toEqual({ host: 'example.com', ...CONDITIONS })
    expect(revalidationHeaders(withHost, request({ host: 'example.org' }))).toEqual({ host: 'example.org' })
  })

  it('judges by the directives a shared cache obeys: those of CDN-Cache-Control, and private', () => {
    const headers = { 'cache-control': 'private', 'cdn-cache-control': 'max-age=60', ...VALIDATORS }
    expect(revalidationHeaders(storedEntry(302, headers, {}, true), request())).toEqual(CONDITIONS)
    expect(revalidationHeaders(storedEntry(200, { 'cache-control': 'private, max-age=60', ...VALIDATORS }), request())).toEqual(CONDITIONS)
  })

  it('reads a policy stored in http-cache-semantics\' own form, as entries were before issue #17', () => {
    const headers = { 'cache-control': 'max-age=60', ...VALIDATORS }
    const policy = new CachePolicy(request(), { status: 200, headers }).toObject() as unknown as Record<string, unknown>
    policy.resh = undefined
    policy.reqh = undefined
    expect(revalidationHeaders(entryWith(headers, { policy }), request())).toEqual(CONDITIONS)
  })
})

describe('parseVary', () => {
  it('lower-cases and trims the names, and joins repeated fields', () => {
    expect(parseVary(['Accept-Encoding ,X-A', ' x-b'])).toEqual(['accept-encoding', 'x-a', 'x-b'])
  })
})
