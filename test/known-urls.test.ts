import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createKey } from '../lib/keys/key.js'
import { KnownUrls } from '../lib/keys/known-urls.js'
import { normalizeUrl } from '../lib/keys/urls.js'
import { parameterRules } from '../lib/keys/redaction.js'
import { normalizeParameters } from '../lib/keys/request-body.js'

const IGNORED = ['api_key', 'Token']
const REDACTED = ['access_token']
const RULES = parameterRules({ ignored: IGNORED, redacted: REDACTED, shared: false })
const NO_RULES = parameterRules({ ignored: [], redacted: [], shared: false })

/**
 * What `KnownUrls` remembers must be what working it out afresh gives: the http(s) origin followed by the
 * request-target exactly as undici sends it, when that is a URL that parses to itself and has no fragment.
 */
function workedOut(origin: string, path: string): { url: string; getKey: string } | undefined {
  let written: string
  try {
    // Not URL.canParse: Node 22's has refused, after other calls, a URL its parser takes (`/\\é`).
    const base = new URL(origin).origin
    if (!/^https?:/.test(base) || !path.startsWith('/') || path.includes('#')) return undefined
    written = base + path
    if (new URL(written).href !== written) return undefined
  } catch {
    return undefined
  }
  return { url: written, getKey: createKey({ method: 'GET', url: written, headers: {} }, { ignoredParameters: IGNORED, redactedParameters: REDACTED }) }
}

const origins = fc.constantFrom('http://127.0.0.1:8080', 'HTTP://Example.COM:80', 'https://example.com', 'http://a.test/base/')
const segment = fc.stringMatching(/^[a-zA-Z0-9._~%-]{0,6}$/)
const pair = fc.tuple(fc.constantFrom('a', 'b', 'api_key', 'TOKEN', 'access_token', 'q', 'x y'), fc.stringMatching(/^[a-z0-9+%]{0,4}$/))
const paths = fc
  .tuple(fc.array(segment, { maxLength: 3 }), fc.array(pair, { maxLength: 4 }), fc.option(segment))
  .map(([segments, pairs, fragment]) => {
    const query = pairs.length ? `?${pairs.map(([name, value]) => `${name}=${value}`).join('&')}` : ''
    return `/${segments.join('/')}${query}${fragment === null ? '' : `#${fragment}`}`
  })

// What the URL parser treats specially somewhere in a path or query (dot segments, also spelt `%2e`), and ordinary characters.
const trickyPart = fc.constantFrom(...'aZ0/.%2eE?#&= "\'\\<>`{}^|[]~!$()*+,;:@-_\té'.split(''), '%2e', '%2E', '/..', '/.', '.%2e/', '%zz')
const trickyPaths = fc.array(trickyPart, { maxLength: 12 }).map((parts) => parts.join(''))
const moreOrigins = fc.constantFrom(
  'http://127.0.0.1:8080',
  'http://127.0.0.1:8080/',
  'http://[::1]:3000',
  'https://EXAMPLE.com',
  'http://a.test:80',
  'http://user:pw@a.test',
  'ftp://a.test',
  'http://a.test/base/',
)

describe('KnownUrls', () => {
  it('keys a request-target only as the URL it is on its origin, with or without parsing it', () => {
    const known = new KnownUrls(NO_RULES)
    fc.assert(
      fc.property(moreOrigins, fc.oneof(trickyPaths.map((path) => `/${path}`), trickyPaths), (origin, path) => {
        expect(known.absolute(origin, path)).toBe(workedOut(origin, path)?.url)
      }),
      { numRuns: 5000 },
    )
  })

  it('gives what working the URL and key out afresh gives, first time, again, and after being filled past its limit', () => {
    const known = new KnownUrls(RULES, 8)
    fc.assert(
      fc.property(fc.array(fc.tuple(origins, paths), { minLength: 1, maxLength: 30 }), (requests) => {
        for (const round of [1, 2]) {
          for (const [origin, path] of requests) {
            const expected = workedOut(origin, path)
            const url = known.absolute(origin, path)
            expect(url, `round ${round}`).toBe(expected?.url)
            if (url !== undefined) expect(known.identity(url).getKey, `round ${round}`).toBe(expected?.getKey)
          }
        }
      }),
    )
  })

  it.each([3, 8])('gives the same when the identities are kept, by origin and path or by URL, past its limit (%i) too', (limit) => {
    const known = new KnownUrls(RULES, limit)
    fc.assert(
      fc.property(fc.array(fc.tuple(moreOrigins, paths), { minLength: 1, maxLength: 30 }), (requests) => {
        for (const round of [1, 2, 3]) {
          for (const [origin, path] of requests) {
            const expected = workedOut(origin, path)
            const url = known.absolute(origin, path)
            expect(url, `round ${round}`).toBe(expected?.url)
            if (url === undefined) continue
            expect(known.identity(url).getKey, `round ${round}`).toBe(expected?.getKey)
            known.keep(url)
            // The same URL written afresh, as a key function or a later request gives it, finds the same.
            expect(known.identity(`${url}`.slice(0)).getKey, `round ${round}`).toBe(expected?.getKey)
          }
        }
      }),
    )
  })

  it('normalises URLs on the string as the URL API would, to a URL that parses to itself', () => {
    const ignored = RULES
    fc.assert(
      fc.property(origins, paths, (origin, path) => {
        const worked = workedOut(origin, path)
        fc.pre(worked !== undefined)
        const href = worked.url
        const viaUrlApi = new URL(href)
        viaUrlApi.hash = ''
        if (viaUrlApi.search !== '') viaUrlApi.search = normalizeParameters(viaUrlApi.search.slice(1), ignored)
        const normalized = normalizeUrl(href, ignored)
        expect(normalized).toBe(viaUrlApi.href)
        expect(new URL(normalized).href).toBe(normalized)
        expect(new KnownUrls(ignored).identity(href).storedUrl).toBe(normalized)
      }),
    )
  })

  it('normalises one parameter as it would the same among others', () => {
    const ignored = RULES
    const parameter = fc.tuple(fc.constantFrom('a', 'api_key', 'TOKEN', 'api%5Fkey', 'access_token', 'x+y', '%zz', ''), fc.option(fc.stringMatching(/^[a-z0-9+%=]{0,4}$/)))
    fc.assert(
      fc.property(parameter, ([name, value]) => {
        const raw = value === null ? name : `${name}=${value}`
        // A trailing `&` adds an empty pair, which is dropped: the result is the same, worked out the long way.
        expect(normalizeParameters(raw, ignored)).toBe(normalizeParameters(`${raw}&`, ignored))
      }),
    )
    expect(normalizeParameters('api%5Fkey=1', ignored)).toBe('')
    expect(normalizeParameters('Token', ignored)).toBe('')
    expect(normalizeParameters('size=1024', ignored)).toBe('size=1024')
  })

  it('remembers the identity of a URL only once it is kept (a response was found for it), and the same after', () => {
    const known = new KnownUrls(RULES)
    const url = 'http://a.test/x?b=2&a=1'
    const first = known.identity(url)
    expect(known.identity(url)).not.toBe(first) // worked out again: not remembered yet
    expect(known.identity(url)).toEqual(first)
    known.keep('http://a.test/other') // not the last one worked out: nothing is kept
    const kept = known.identity(url)
    known.keep(url)
    expect(known.identity(url)).toBe(kept)
    expect(kept).toEqual({ storedUrl: 'http://a.test/x?a=1&b=2', getKey: workedOut('http://a.test', '/x?b=2&a=1')!.getKey })
  })

  it('keeps apart origin and path pairs that read the same when joined', () => {
    const known = new KnownUrls(NO_RULES)
    expect(known.absolute('http://a.test/b', '/c')).toBe('http://a.test/c')
    expect(known.absolute('http://a.test', '/b/c')).toBe('http://a.test/b/c')
    expect(known.absolute('http://a.test/b', '/c')).toBe('http://a.test/c')
  })

  it('normalises the stored URL as createKey does: query sorted, ignored parameters removed, redacted ones digested', () => {
    const known = new KnownUrls(RULES)
    expect(known.identity('http://a.test/p?b=2&TOKEN=x&a=1').storedUrl).toBe('http://a.test/p?a=1&b=2')
    expect(known.identity('http://a.test/p').storedUrl).toBe('http://a.test/p')
    expect(known.identity('http://a.test/p?').storedUrl).toBe('http://a.test/p?') // as the URL API keeps it
    expect(known.identity('http://a.test/p?TOKEN=1&api_key=2').storedUrl).toBe('http://a.test/p')
    expect(known.identity('http://a.test/p?&&').storedUrl).toBe('http://a.test/p')
    expect(known.identity('http://a.test/p?access_token=secret').storedUrl).toMatch(/^http:\/\/a\.test\/p\?access_token=redacted:[\w-]{43}$/)
    expect(known.identity('http://a.test/p?b#x').storedUrl).toBe('http://a.test/p?b')
  })

  it('answers undefined for an origin and path that make no URL, every time', () => {
    const known = new KnownUrls(NO_RULES)
    expect(known.absolute('not a url', '/x')).toBeUndefined()
    expect(known.absolute('not a url', '/x')).toBeUndefined()
  })
})
