import { describe, expect, it } from 'vitest'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

/** An origin that answers in the request's Accept-Language, with Vary: Accept-Language. */
function startLanguageOrigin(vary = 'Accept-Language') {
  return startOrigin((request, response) => {
    response.setHeader('cache-control', 'max-age=60')
    response.setHeader('vary', vary)
    response.end(`lang=${request.headers['accept-language'] ?? 'none'}`)
  })
}

describe('Vary', () => {
  it('keeps one variant per value of the named request header', async () => {
    const origin = await startLanguageOrigin()
    const agent = createTestAgent()
    const en = { 'accept-language': 'en' }
    const fr = { 'accept-language': 'fr' }
    expect((await get(origin.url, agent, { headers: en })).body).toBe('lang=en')
    const frMiss = await get(origin.url, agent, { headers: fr })
    expect(frMiss.body).toBe('lang=fr')
    expect(frMiss.headers['cache-status']).toMatch(/fwd=vary-miss/)
    const enHit = await get(origin.url, agent, { headers: en })
    const frHit = await get(origin.url, agent, { headers: fr })
    expect([enHit.body, frHit.body]).toEqual(['lang=en', 'lang=fr'])
    expect([statusOf(enHit.headers), statusOf(frHit.headers)]).toEqual(['hit', 'hit'])
    expect(origin.requests).toBe(2)
  })

  it('revalidates a stale variant with its validator, whether the named header was absent or spelt with spaces', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((request, response) => {
      response.setHeader('cache-control', 'max-age=1')
      response.setHeader('vary', 'Accept-Language')
      response.setHeader('etag', '"v1"')
      if (request.headers['if-none-match'] === '"v1"') {
        response.statusCode = 304
        response.end()
      } else response.end(`lang=${request.headers['accept-language'] ?? 'none'}`)
    })
    const agent = createTestAgent()
    const cases: Array<Record<string, string>> = [{}, { 'accept-language': 'en , fr' }]
    for (const headers of cases) {
      await get(origin.url, agent, { headers })
      clock.advance(2_000)
      const revalidated = await get(origin.url, agent, { headers })
      expect(revalidated.status).toBe(200)
      expect(revalidated.body).toBe(`lang=${headers['accept-language'] ?? 'none'}`)
      expect(origin.received.at(-1)!.headers['if-none-match']).toBe('"v1"')
      expect(statusOf(revalidated.headers)).toBe('revalidated')
    }
  })

  it('matches an absent header only with an absent header', async () => {
    const origin = await startLanguageOrigin()
    const agent = createTestAgent()
    expect((await get(origin.url, agent)).body).toBe('lang=none')
    expect((await get(origin.url, agent, { headers: { 'accept-language': '' } })).body).toBe('lang=')
    expect((await get(origin.url, agent)).body).toBe('lang=none')
    expect(origin.requests).toBe(2)
  })

  it('matches on several named headers, whatever their case in Vary', async () => {
    const origin = await startOrigin((request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      response.setHeader('vary', 'ACCEPT-LANGUAGE,  X-Theme')
      response.end(`${request.headers['accept-language']}/${request.headers['x-theme']}`)
    })
    const agent = createTestAgent()
    await get(origin.url, agent, { headers: { 'accept-language': 'en', 'x-theme': 'dark' } })
    const otherTheme = await get(origin.url, agent, { headers: { 'accept-language': 'en', 'x-theme': 'light' } })
    expect(otherTheme.body).toBe('en/light')
    const same = await get(origin.url, agent, { headers: { 'Accept-Language': 'en', 'X-Theme': 'dark' } })
    expect(same.body).toBe('en/dark')
    expect(statusOf(same.headers)).toBe('hit')
    expect(origin.requests).toBe(2)
  })

  it('selects a variant by the Vary of the 304 that renewed it, not the Vary it was stored with', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((request, response) => {
      const vary = origin.requests === 1 ? 'Accept-Encoding' : 'Accept-Encoding, Accept-Language'
      if (request.headers['if-none-match'] === '"a"') return void response.writeHead(304, { etag: '"a"', vary, 'cache-control': 'max-age=60' }).end()
      response.writeHead(200, { etag: '"a"', vary, 'cache-control': 'max-age=60' }).end(`for ${request.headers['accept-language']}`)
    })
    const agent = createTestAgent()
    const english = { headers: { 'accept-language': 'en' } }
    await get(origin.url, agent, english)
    clock.advance(61_000)
    expect(statusOf((await get(origin.url, agent, english)).headers)).toBe('revalidated')
    const french = await get(origin.url, agent, { headers: { 'accept-language': 'fr' } })
    expect(french.body).toBe('for fr')
    expect(statusOf((await get(origin.url, agent, english)).headers)).toBe('hit')
  })

  it('replaces the variants when a response without Vary arrives', async () => {
    let vary = true
    const origin = await startOrigin((_request, response) => {
      response.setHeader('cache-control', 'max-age=60')
      if (vary) response.setHeader('vary', 'accept-language')
      response.end(vary ? 'varied' : 'plain')
    })
    const agent = createTestAgent()
    await get(origin.url, agent, { headers: { 'accept-language': 'en' } })
    vary = false
    await get(origin.url, agent, { headers: { 'accept-language': 'en', 'cache-control': 'no-cache' } })
    const after = await get(origin.url, agent, { headers: { 'accept-language': 'fr' } })
    expect(after.body).toBe('plain')
    expect(statusOf(after.headers)).toBe('hit')
  })
})
