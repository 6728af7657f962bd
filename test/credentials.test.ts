// Issue #16 part 0: credentials are redacted from everything kept or shown, yet still tell requests apart.
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { fetch, getGlobalDispatcher, Headers, request, setGlobalDispatcher } from 'undici'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { createKey, type CachingAgent, type CachingAgentOptions } from '../lib/index.js'
import { ENTRY_VERSION, type ResponseEntry } from '../lib/stores/store.js'
import { ALICE, BOB, bearer, send, startAccountOrigin, type SendOptions } from './helpers/accounts.js'
import { createTestAgent } from './helpers/agent.js'
import { MapStore } from './helpers/map-store.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { openStore, temporaryDatabase } from './helpers/sqlite-file.js'

describe.each(['request', 'fetch'] as const)('credentials keep users apart by default, through %s()', (via) => {
  /** Alice, Bob, Alice again, Bob again: each user's first request misses, their second hits their own. */
  async function aliceThenBob(agent: CachingAgent, requestOf: (secret: string) => [string, SendOptions]) {
    const results = []
    for (const secret of [ALICE, BOB, ALICE, BOB]) {
      const [url, options] = requestOf(secret)
      results.push(await send(via, url, agent, options))
    }
    return results
  }

  function expectKeptApart(results: Array<{ body: string; status: string | undefined }>, origin: Origin) {
    expect(results.map(({ body }) => body)).toEqual(['1 account of alice', '2 account of bob', '1 account of alice', '2 account of bob'])
    expect(results.map(({ status }) => status)).toEqual(['miss', 'miss', 'hit', 'hit'])
    expect(origin.requests).toBe(2)
  }

  it('in the query (api_key, access_token)', async () => {
    for (const name of ['api_key', 'access_token']) {
      const origin = await startAccountOrigin()
      const agent = createTestAgent()
      expectKeptApart(await aliceThenBob(agent, (secret) => [`${origin.url}v1/me?${name}=${secret}&view=full`, {}]), origin)
    }
  })

  it('in a request header (Authorization, Cookie, X-API-Key)', async () => {
    const headers = [(secret: string) => bearer(secret), (secret: string) => ({ cookie: `session=${secret}` }), (secret: string) => ({ 'x-api-key': secret })]
    for (const headersOf of headers) {
      const origin = await startAccountOrigin()
      const agent = createTestAgent()
      expectKeptApart(await aliceThenBob(agent, (secret) => [`${origin.url}v1/me`, { headers: headersOf(secret) }]), origin)
    }
  })

  it('in the JSON body and the form body of a cached POST', async () => {
    const bodies = [
      { type: 'application/json', of: (secret: string) => JSON.stringify({ query: 'me', auth: { api_key: secret } }) },
      { type: 'application/x-www-form-urlencoded', of: (secret: string) => `query=me&access_token=${secret}` },
    ]
    for (const { type, of } of bodies) {
      const origin = await startAccountOrigin()
      const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
      const post = (secret: string): [string, SendOptions] => [`${origin.url}graphql`, { method: 'POST', headers: { 'content-type': type }, body: of(secret) }]
      expectKeptApart(await aliceThenBob(agent, post), origin)
    }
  })

  it('in a JSON body member named __proto__ (kept as a member, not read as a prototype)', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
    const post = (secret: string): [string, SendOptions] => [
      `${origin.url}graphql`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"q":1,"__proto__":{"api_key":"${secret}"}}` },
    ]
    expectKeptApart(await aliceThenBob(agent, post), origin)
  })

  it('in the API key headers of common services (GitLab Private-Token, Google X-Goog-Api-Key, Azure)', async () => {
    for (const name of ['private-token', 'x-goog-api-key', 'ocp-apim-subscription-key', 'api-key', 'x-access-token']) {
      const origin = await startAccountOrigin()
      const agent = createTestAgent()
      expectKeptApart(await aliceThenBob(agent, (secret) => [`${origin.url}api/v4/user`, { headers: { [name]: secret } }]), origin)
    }
  })

  it('in Authorization, Proxy-Authorization and Cookie, also when a redactedParameters list leaves them out', async () => {
    const headers = [bearer, (secret: string) => ({ 'proxy-authorization': `Basic ${secret}` }), (secret: string) => ({ cookie: `session=${secret}` })]
    for (const headersOf of headers) {
      const origin = await startAccountOrigin()
      const agent = createTestAgent({ redactedParameters: ['X-Session'] })
      expectKeptApart(await aliceThenBob(agent, (secret) => [`${origin.url}v1/me`, { headers: headersOf(secret) }]), origin)
    }
  })

  it('but merges the names ignoredParameters lists, as requests-cache does', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent({ ignoredParameters: ['api_key', 'Authorization'] })
    const results = await aliceThenBob(agent, (secret) => [`${origin.url}v1/me?api_key=${secret}`, { headers: bearer(secret) }])
    expect(results.map(({ body }) => body)).toEqual(Array(4).fill('1 account of alice'))
    expect(origin.requests).toBe(1)
  })

  it('selects a Vary: Authorization variant by the digest of each user\'s value', async () => {
    const origin = await startAccountOrigin()
    const store = new MapStore()
    const agent = createTestAgent({ store, ignoredParameters: ['Authorization'] }) // Vary still tells them apart
    expectKeptApart(await aliceThenBob(agent, (secret) => [`${origin.url}vary/me`, { headers: bearer(secret) }]), origin)
    expect(JSON.stringify([...store.entries.values()])).not.toMatch(/s3cret/)
  })
})

describe('credentials keep users apart whatever their shape and path', () => {
  it('in a flat header array, upper-case names, a Headers object, one cookie among several, and a HEAD', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent()
    const a = await request(`${origin.url}me`, { dispatcher: agent, headers: ['AUTHORIZATION', `Bearer ${ALICE}`] })
    const b = await request(`${origin.url}me`, { dispatcher: agent, headers: ['Authorization', `Bearer ${BOB}`] })
    const c = await fetch(`${origin.url}me`, { dispatcher: agent, headers: new Headers({ Authorization: `Bearer ${BOB}` }) })
    expect([await a.body.text(), await b.body.text(), await c.text()]).toEqual(['1 account of alice', '2 account of bob', '2 account of bob'])
    const alice = await send('request', `${origin.url}cookies`, agent, { headers: { cookie: `theme=dark; session=${ALICE}` } })
    const bob = await send('fetch', `${origin.url}cookies`, agent, { headers: { cookie: `theme=dark; session=${BOB}` } })
    expect([alice.body, bob.body]).toEqual(['3 account of alice', '4 account of bob'])
    const head = await request(`${origin.url}cookies`, { dispatcher: agent, method: 'HEAD', headers: { cookie: `session=${BOB}x` } })
    await head.body.dump()
    expect(origin.requests).toBe(5) // Bob's HEAD is not answered from another user's GET
  })

  it('never lets Alice and Bob share one origin request when they ask at once', async () => {
    let release = (): void => {}
    const released = new Promise<void>((resolve) => (release = resolve))
    let served = 0
    const origin = await startOrigin(async (incoming, response) => {
      const user = String(incoming.headers.authorization).includes(ALICE) ? 'alice' : 'bob'
      await released
      response.setHeader('cache-control', 'max-age=60')
      response.end(`${++served} account of ${user}`)
    })
    onTestFinished(() => release())
    const agent = createTestAgent()
    const pending = [ALICE, BOB, BOB].map((secret, index) => send(index === 1 ? 'fetch' : 'request', `${origin.url}me`, agent, { headers: bearer(secret) }))
    await vi.waitUntil(() => origin.requests === 2)
    release()
    const [alice, bob, bobAgain] = await Promise.all(pending)
    expect([alice!.body, bob!.body.endsWith('bob'), bobAgain!.body.endsWith('bob')]).toEqual(['1 account of alice', true, true])
    expect(origin.requests).toBe(2) // Bob's two requests shared one
  })

  it('through Node\'s global fetch and setGlobalDispatcher', async () => {
    const origin = await startAccountOrigin()
    const previous = getGlobalDispatcher()
    setGlobalDispatcher(createTestAgent())
    onTestFinished(() => setGlobalDispatcher(previous))
    const bodies = []
    for (const secret of [ALICE, BOB]) {
      bodies.push(await (await globalThis.fetch(`${origin.url}v1/me?api_key=${secret}`)).text())
      bodies.push(await (await globalThis.fetch(`${origin.url}v1/me`, { headers: bearer(secret) })).text())
    }
    expect(bodies).toEqual(['1 account of alice', '2 account of alice', '3 account of bob', '4 account of bob'])
  })
})

describe('credentials and responses stored without them', () => {
  it('serves a request with credentials what was stored without them (cache-tests other-cookie), never the reverse', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent()
    const anonymous = await send('request', `${origin.url}page`, agent)
    const withCookie = await send('fetch', `${origin.url}page`, agent, { headers: { cookie: `session=${ALICE}` } })
    expect([anonymous.status, withCookie.status, withCookie.body]).toEqual(['miss', 'hit', '1 account of nobody'])
    // What a request with credentials gets is stored for those credentials only.
    const bobFirst = await send('request', `${origin.url}other`, agent, { headers: bearer(BOB) })
    const nobody = await send('request', `${origin.url}other`, agent)
    const alice = await send('request', `${origin.url}other`, agent, { headers: bearer(ALICE) })
    expect([bobFirst.body, nobody.body, alice.body]).toEqual(['2 account of bob', '3 account of nobody', '3 account of nobody'])
    expect(alice.status).toBe('hit')
    expect(origin.requests).toBe(3)
  })

  it.each(['request', 'fetch'] as const)('serves what was stored without credentials without the Set-Cookie issued to its requester, through %s()', async (via) => {
    let sessions = 0
    const origin = await startOrigin((incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      if (incoming.headers.cookie === undefined) response.setHeader('set-cookie', `session=anonymous-${++sessions}; HttpOnly`)
      response.end('home page')
    })
    const agent = createTestAgent()
    const anonymous = await request(`${origin.url}home`, { dispatcher: agent })
    await anonymous.body.text()
    const headers = { cookie: `session=${ALICE}` }
    const alicesCookies = async (): Promise<string[]> => {
      if (via === 'fetch') return (await fetch(`${origin.url}home`, { dispatcher: agent, headers })).headers.getSetCookie()
      const response = await request(`${origin.url}home`, { dispatcher: agent, headers })
      await response.body.dump()
      return [response.headers['set-cookie'] ?? []].flat()
    }
    // Alice's own session is never replaced by the one an anonymous visitor was issued; the next anonymous
    // visitor (the stored request's own kind) is still served the response as stored.
    expect([anonymous.headers['set-cookie'], await alicesCookies()]).toEqual(['session=anonymous-1; HttpOnly', []])
    const again = await request(`${origin.url}home`, { dispatcher: agent })
    await again.body.text()
    expect([again.headers['set-cookie'], origin.requests]).toEqual(['session=anonymous-1; HttpOnly', 1])
  })

  it('never serves a request with credentials what was stored without them when it varies on them', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent()
    await send('request', `${origin.url}vary/me`, agent)
    const alice = await send('fetch', `${origin.url}vary/me`, agent, { headers: bearer(ALICE) })
    expect([alice.status, alice.body]).toEqual(['miss', '2 account of alice'])
  })

  it('shares a response to Authorization in shared mode only as RFC 9111 §3.5 allows (public), and keeps Cookie apart', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent({ shared: true })
    await send('request', `${origin.url}private/me`, agent, { headers: bearer(ALICE) }) // not stored: no public
    const bobPrivate = await send('request', `${origin.url}private/me`, agent, { headers: bearer(BOB) })
    expect(bobPrivate.body).toBe('2 account of bob')
    await send('request', `${origin.url}public/doc`, agent, { headers: bearer(ALICE) })
    const anyone = await send('request', `${origin.url}public/doc`, agent)
    expect([anyone.status, anyone.body]).toEqual(['hit', '3 account of alice']) // the origin said public
    await send('request', `${origin.url}public/cookie`, agent, { headers: { cookie: `s=${ALICE}` } })
    const bobCookie = await send('request', `${origin.url}public/cookie`, agent, { headers: { cookie: `s=${BOB}` } })
    expect(bobCookie.body).toBe('5 account of bob')
  })

  it('keeps a 304 to a request with credentials, for what was stored without them, for that request only', async () => {
    const store = new MapStore()
    const origin = await startRenewingOrigin({ 'cache-control': 'max-age=60', vary: 'Authorization' }) // now varies on it
    const agent = createTestAgent({ store })
    await send('request', origin.url, agent)
    const renewed = await send('fetch', origin.url, agent, { headers: bearer(ALICE) })
    const again = await send('request', origin.url, agent, { headers: bearer(ALICE) })
    const bob = await send('request', origin.url, agent, { headers: bearer(BOB) })
    expect([renewed.body, again.status, bob.status]).toEqual(['stored without credentials', 'hit', 'revalidated'])
    expect(JSON.stringify([...store.entries.values()])).not.toMatch(/s3cret/)
  })

  it('matches a redacted header named in matchHeaders by its digest', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent({ matchHeaders: ['Authorization', 'Accept'] })
    const first = await send('request', `${origin.url}me`, agent, { headers: bearer(ALICE) })
    const again = await send('request', `${origin.url}me`, agent, { headers: bearer(ALICE) })
    const bob = await send('request', `${origin.url}me`, agent, { headers: bearer(BOB) })
    expect([first.body, again.status, bob.body]).toEqual(['1 account of alice', 'hit', '2 account of bob'])
  })

  it('never serves an entry of the previous format, which may hold two users\' merged response', async () => {
    const origin = await startAccountOrigin()
    const store = new MapStore()
    const url = `${origin.url}v1/me`
    const merged = { version: 3, kind: 'response', method: 'GET', url, requestHeaders: {}, status: 200, statusText: 'OK' }
    const old = { ...merged, headers: { 'cache-control': 'max-age=60' }, body: Buffer.from('account of alice'), createdAt: Date.now(), initialAgeSeconds: 0, lifetimeSeconds: 60, policy: {} }
    expect(ENTRY_VERSION).toBeGreaterThan(3)
    store.entries.set(createKey({ method: 'GET', url, headers: {} }), old as unknown as ResponseEntry)
    expect(await send('request', url, createTestAgent({ store }))).toMatchObject({ status: 'miss', body: '1 account of nobody' })
  })
})

describe('credentials in inspection and maintenance', () => {
  async function storeForAliceAndBob(options: CachingAgentOptions = {}) {
    const origin = await startAccountOrigin()
    const store = new MapStore()
    const agent = createTestAgent({ store, ...options })
    for (const secret of [ALICE, BOB]) {
      await send('request', `${origin.url}v1/me`, agent, { headers: bearer(secret) })
      await send('request', `${origin.url}v1/keys?api_key=${secret}`, agent)
    }
    return { origin, agent, store }
  }

  it('cache.get() with a user\'s credentials gives that user\'s entry', async () => {
    const { origin, agent } = await storeForAliceAndBob()
    const bodyOf = async (url: string, headers?: Record<string, string>) => Buffer.from((await agent.cache.get(url, { headers }))!.body).toString()
    expect(await bodyOf(`${origin.url}v1/me`, bearer(BOB))).toBe('3 account of bob')
    expect(await bodyOf(`${origin.url}v1/keys?api_key=${ALICE}`)).toBe('2 account of alice')
    expect(await agent.cache.get(`${origin.url}v1/me`)).toBeUndefined()
  })

  it('deletes by a URL with its credentials, or as urls() lists it', async () => {
    const { origin, agent } = await storeForAliceAndBob()
    expect(await agent.cache.delete(`${origin.url}v1/keys?api_key=${ALICE}`)).toBe(1)
    const [bobsKeys] = (await agent.cache.urls()).filter((url) => url.includes('keys'))
    expect(await agent.cache.delete(bobsKeys!)).toBe(1)
    expect(await agent.cache.delete(`${origin.url}v1/me`)).toBe(2) // every user's, as for any URL
  })

  it('recreateKeys() keys every entry by its digests again: no two users\' entries merge', async () => {
    const { origin, store } = await storeForAliceAndBob({ matchHeaders: ['Accept'] })
    const after = createTestAgent({ store })
    expect(await after.cache.recreateKeys()).toBe(4)
    for (const [secret, user] of [[ALICE, 'alice'], [BOB, 'bob']] as const) {
      expect(await send('request', `${origin.url}v1/me`, after, { headers: bearer(secret) })).toMatchObject({ status: 'hit', body: expect.stringContaining(user) })
      expect(await send('fetch', `${origin.url}v1/keys?api_key=${secret}`, after)).toMatchObject({ status: 'hit', body: expect.stringContaining(user) })
    }
    expect(origin.requests).toBe(4)
  })

  it('recreateKeys() keeps a response renewed by a 304 to a request with credentials under those credentials', async () => {
    const origin = await startRenewingOrigin({ 'cache-control': 'max-age=60' })
    const store = new MapStore()
    const agent = createTestAgent({ store })
    await send('request', origin.url, agent) // stored, stale at once
    await send('request', origin.url, agent, { headers: bearer(ALICE) }) // renewed for Alice, under her key
    const after = createTestAgent({ store, matchHeaders: ['Accept'] })
    await after.cache.recreateKeys()
    const alice = await send('request', origin.url, after, { headers: bearer(ALICE) })
    const anonymous = await send('request', origin.url, after)
    expect([alice.status, anonymous.status]).toEqual(['hit', 'revalidated'])
  })

  it('an unsafe request invalidates the entry for its credentials and the one without them (RFC 9111 §4.4)', async () => {
    const origin = await startAccountOrigin()
    const agent = createTestAgent()
    await send('request', `${origin.url}doc`, agent)
    await send('request', `${origin.url}doc`, agent, { headers: bearer(ALICE) }) // served what was stored without
    await send('request', `${origin.url}doc?x=1`, agent, { headers: bearer(ALICE) }) // stored for Alice
    await send('request', `${origin.url}doc?x=1`, agent, { method: 'POST', headers: bearer(ALICE) })
    await send('request', `${origin.url}doc`, agent, { method: 'PUT', headers: bearer(ALICE) })
    const alice = await send('request', `${origin.url}doc?x=1`, agent, { headers: bearer(ALICE) })
    const anonymous = await send('request', `${origin.url}doc`, agent)
    expect([alice.status, anonymous.status]).toEqual(['miss', 'miss'])
  })
})

describe.each(['request', 'fetch'] as const)('an unsafe request invalidates every user\'s stored response (RFC 9111 §4.4), through %s()', (via) => {
  /** A document a team shares: a PUT changes it, one with `x-conflict` fails (409) and changes nothing. */
  async function startTeamOrigin(): Promise<Origin> {
    let version = 1
    return startOrigin((incoming, response) => {
      if (incoming.method === 'PUT' && incoming.headers['x-conflict'] !== undefined) return void response.writeHead(409).end()
      if (incoming.method === 'PUT') version++
      response.setHeader('cache-control', 'max-age=60')
      response.end(`team settings v${version}`)
    })
  }

  it('Alice\'s successful PUT, or one without credentials, invalidates what Bob has stored; a failed one does not', async () => {
    const origin = await startTeamOrigin()
    const agent = createTestAgent()
    const url = `${origin.url}team/settings`
    const bobReads = async () => {
      const { status, body } = await send(via, url, agent, { headers: bearer(BOB) })
      return `${status} ${body}`
    }
    const put = (headers: Record<string, string>) => send(via, url, agent, { method: 'PUT', headers })
    expect([await bobReads(), await bobReads()]).toEqual(['miss team settings v1', 'hit team settings v1'])
    await put({ ...bearer(ALICE), 'x-conflict': '1' })
    expect(await bobReads()).toBe('hit team settings v1')
    await put(bearer(ALICE))
    expect([await bobReads(), await bobReads()]).toEqual(['miss team settings v2', 'hit team settings v2'])
    await put({})
    expect(await bobReads()).toBe('miss team settings v3')
  })

  it('and entries() lists what it invalidated no longer, as no request is served it', async () => {
    const origin = await startTeamOrigin()
    const agent = createTestAgent()
    const url = `${origin.url}team/settings`
    const listed = async () => {
      const bodies = []
      for await (const entry of agent.cache.entries()) bodies.push(Buffer.from(entry.body).toString())
      return bodies
    }
    await send(via, url, agent, { headers: bearer(BOB) })
    expect(await listed()).toEqual(['team settings v1'])
    await send(via, url, agent, { method: 'PUT', headers: bearer(ALICE) })
    expect(await listed()).toEqual([])
  })

  it('in another process sharing the store (two SqliteStores on one file)', async () => {
    const origin = await startTeamOrigin()
    const path = temporaryDatabase()
    const [bobsAgent, alicesAgent] = [createTestAgent({ store: openStore({ path }) }), createTestAgent({ store: openStore({ path }) })]
    const url = `${origin.url}team/settings`
    expect((await send(via, url, bobsAgent, { headers: bearer(BOB) })).body).toBe('team settings v1')
    expect((await send(via, url, bobsAgent, { headers: bearer(BOB) })).status).toBe('hit')
    await send(via, url, alicesAgent, { method: 'PUT', headers: bearer(ALICE) })
    expect(await send(via, url, bobsAgent, { headers: bearer(BOB) })).toMatchObject({ status: 'miss', body: 'team settings v2' })
  })
})

describe('what a hit costs', () => {
  it('a hit without credentials reads the store once and computes no SHA-256; one with credentials reads its generation too', async () => {
    const origin = await startOrigin((_incoming, response) => void response.setHeader('cache-control', 'max-age=600').end('x'))
    const store = new CountingStore()
    const agent = createTestAgent({ store })
    const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')
    const original = crypto.hash
    let digests = 0
    crypto.hash = ((...args: Parameters<typeof original>) => (digests++, original(...args))) as typeof original
    syncBuiltinESMExports()
    onTestFinished(() => {
      crypto.hash = original
      syncBuiltinESMExports()
    })
    const hitCost = async (path: string, headers: Record<string, string>) => {
      await (await request(`${origin.url}${path}`, { dispatcher: agent, headers })).body.text() // stored, unless it is already
      // The first hit on a URL remembers its key, worked out once more then (KnownUrls.keep): the hits after it are counted.
      await (await request(`${origin.url}${path}`, { dispatcher: agent, headers })).body.text()
      ;[digests, store.reads] = [0, 0]
      for (let index = 0; index < 10; index++) await (await request(`${origin.url}${path}`, { dispatcher: agent, headers })).body.text()
      return { digests: digests / 10, reads: store.reads / 10 }
    }
    const anonymous = await hitCost('r?a=1', { accept: 'text/plain' })
    // Answered from the response stored without credentials (other-cookie): its own key, its generation, that one.
    const fromAnonymous = await hitCost('r?a=1', { accept: 'text/plain', authorization: `Bearer ${ALICE}` })
    const own = await hitCost('own', { authorization: `Bearer ${ALICE}` }) // stored for Alice: its key and its generation
    expect(origin.requests).toBe(2)
    expect({ anonymous, fromAnonymous, own }).toEqual({
      anonymous: { digests: 0, reads: 1 },
      fromAnonymous: { digests: 2, reads: 3 },
      own: { digests: 2, reads: 2 },
    })
  })
})

/** A MapStore that counts its reads. */
class CountingStore extends MapStore {
  reads = 0

  override get(key: string) {
    this.reads++
    return super.get(key)
  }
}

/** An origin whose response is stale at once, and that answers a revalidation of it with a 304 of these fields. */
async function startRenewingOrigin(notModifiedFields: Record<string, string>): Promise<Origin> {
  return startOrigin((incoming, response) => {
    response.setHeader('etag', '"a"')
    if (incoming.headers['if-none-match'] === '"a"') response.writeHead(304, notModifiedFields).end()
    else response.setHeader('cache-control', 'max-age=0').end('stored without credentials')
  })
}
