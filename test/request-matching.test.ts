import { Readable } from 'node:stream'
import { fetch, FormData, request } from 'undici'
import { describe, expect, it } from 'vitest'
import { cacheInfo, createKey, type CacheRequest, type CachingAgentOptions, type ResponseEntry } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { MapStore } from './helpers/map-store.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText } from './helpers/request.js'

/** An origin whose responses are fresh for a minute and whose body names the request that made it. */
async function startCountingOrigin(): Promise<Origin> {
  let served = 0
  return startOrigin(async (request, response) => {
    let body = ''
    for await (const chunk of request) body += chunk
    response.setHeader('cache-control', 'max-age=60')
    response.end(`${++served} ${request.method} ${request.url} ${body}`)
  })
}

function statusOf(response: { headers: Record<string, string | string[] | undefined> }) {
  return cacheInfo(response.headers).status
}

/** The response entries a MapStore holds (not the Vary records). */
function storedResponses(store: MapStore): ResponseEntry[] {
  return [...store.entries.values()].filter((entry): entry is ResponseEntry => (entry as ResponseEntry).kind === 'response')
}

describe('request matching: URLs', () => {
  it('matches query parameters in any order, and keeps the order of values of one name', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    const first = await fetchText(`${origin.url}search?b=2&a=1&a=0`, agent)
    const reordered = await fetchText(`${origin.url}search?a=1&b=2&a=0`, agent)
    const otherValueOrder = await fetchText(`${origin.url}search?a=0&a=1&b=2`, agent)
    expect(reordered.body).toBe(first.body)
    expect(cacheInfo(reordered.headers).status).toBe('hit')
    expect(otherValueOrder.body).not.toBe(first.body)
    expect(origin.requests).toBe(2)
  })

  it('matches URLs that differ only in host case, default port or fragment, and undici `query` options', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    const { port } = new URL(origin.url)
    await fetchText(`${origin.url}page?x=1#top`, agent)
    const hostCase = await request(`http://127.0.0.1:${port}/page?x=1#bottom`, { dispatcher: agent })
    const queryOption = await request(`${origin.origin}/page`, { dispatcher: agent, query: { x: 1 } })
    expect(cacheInfo(hostCase.headers).status).toBe('hit')
    expect(cacheInfo(queryOption.headers).status).toBe('hit')
    await Promise.all([hostCase.body.text(), queryOption.body.text()])
    expect(origin.requests).toBe(1)
  })

  it('leaves ignored parameters out of the key and out of what is stored, headers too', async () => {
    const origin = await startCountingOrigin()
    const store = new MapStore()
    const agent = createTestAgent({ store, ignoredParameters: ['access_token', 'Authorization'] })
    await fetchText(`${origin.url}me?access_token=first&view=full`, agent, { headers: { authorization: 'Bearer one' } })
    const second = await fetchText(`${origin.url}me?view=full&access_token=second`, agent, { headers: { Authorization: 'Bearer two' } })
    expect(cacheInfo(second.headers).status).toBe('hit')
    expect(origin.requests).toBe(1)
    // The origin saw the real request; the store holds no credential.
    expect(origin.received[0]!.url).toBe('/me?access_token=first&view=full')
    const [entry] = storedResponses(store)
    expect(entry!.url).toBe(`${origin.url}me?view=full`)
    expect(entry!.requestHeaders.authorization).toMatch(/^redacted:/) // kept as a digest, for a Vary that names it
    expect(JSON.stringify([...store.entries.values()])).not.toMatch(/first|Bearer/)
  })

  it('ignores parameters named in ignoredParameters, case-insensitively, in the query', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ ignoredParameters: ['auth-token'] })
    await fetchText(`${origin.url}get?Auth-Token=2F63E5DF4F44`, agent)
    const second = await fetchText(`${origin.url}get?auth-token=D9FAEB3449D3`, agent)
    expect(cacheInfo(second.headers).status).toBe('hit')
    expect(origin.requests).toBe(1)
  })

  it('with ignoredParameters: [] keys every query parameter, credentials included', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ ignoredParameters: [] })
    await fetchText(`${origin.url}me?access_token=first`, agent)
    const second = await fetchText(`${origin.url}me?access_token=second`, agent)
    expect(cacheInfo(second.headers).status).toBe('miss')
    expect(origin.requests).toBe(2)
  })
})

describe('request matching: request-targets as undici sends them', () => {
  /** A GET of `path` on `origin` through `agent`, the path sent as written (as undici does). */
  async function getPath(agent: ReturnType<typeof createTestAgent>, origin: string, path: string) {
    const response = await agent.request({ origin, path, method: 'GET' })
    return { status: statusOf(response), body: await response.body.text() }
  }

  it('never keys a target as a URL of another origin, however it is written', async () => {
    const victim = await startCountingOrigin()
    const attacker = await startCountingOrigin()
    const agent = createTestAgent()
    const victimHost = new URL(victim.origin).host
    // A path on the attacker's origin that the URL parser would read as another host, and an absolute-form target.
    expect((await getPath(agent, attacker.origin, `//${victimHost}/account`)).status).toBe('miss')
    expect((await getPath(agent, attacker.origin, `${victim.origin}/account`)).status).toBe('bypass')
    const genuine = await fetchText(`${victim.origin}/account`, agent)
    expect(statusOf(genuine)).toBe('miss')
    expect(genuine.body).toBe('1 GET /account ')
    expect((await agent.cache.urls()).sort()).toEqual([`${attacker.origin}//${victimHost}/account`, `${victim.origin}/account`].sort())
  })

  it('leaves a target the URL parser would rewrite (dot segments, backslashes) uncached, not keyed as the rewritten one', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    for (const path of ['/files/../admin', '/files\\admin']) expect((await getPath(agent, origin.origin, path)).status).toBe('bypass')
    const admin = await fetchText(`${origin.origin}/admin`, agent)
    expect(statusOf(admin)).toBe('miss')
    expect(origin.requests).toBe(3)
  })

  it('leaves a target with a fragment, which undici sends too, uncached', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    expect((await getPath(agent, origin.origin, '/page#part')).status).toBe('bypass')
    expect(statusOf(await fetchText(`${origin.origin}/page`, agent))).toBe('miss')
  })

  it('leaves a request whose Host is another than its URL\'s uncached: it names a resource of that host', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    const { host } = new URL(origin.origin)
    const asSite = async (site: string) => {
      const response = await agent.request({ origin: origin.origin, path: '/', method: 'GET', headers: { host: site } })
      await response.body.text()
      return statusOf(response)
    }
    expect([await asSite('a.example'), await asSite('b.example')]).toEqual(['bypass', 'bypass'])
    expect([await asSite(host), await asSite(host.toUpperCase())]).toEqual(['miss', 'hit'])
  })

  it('invalidates what is stored for the URL an unsafe request it does not key resolves to', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    await fetchText(`${origin.origin}/items/5`, agent)
    const deleted = await agent.request({ origin: origin.origin, path: '/items/x/../5', method: 'DELETE' })
    await deleted.body.text()
    expect(statusOf(deleted)).toBe('bypass')
    expect(statusOf(await fetchText(`${origin.origin}/items/5`, agent))).toBe('miss')
    // With undici's query option, as undici sends it.
    await fetchText(`${origin.origin}/items/5?id=1`, agent)
    const withQuery = await agent.request({ origin: origin.origin, path: '/items/x/../5', query: { id: 1 }, method: 'DELETE' })
    await withQuery.body.text()
    expect(statusOf(await fetchText(`${origin.origin}/items/5?id=1`, agent))).toBe('miss')
  })

  it('keys undici\'s `query` option as undici sends it', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    const viaOption = await request(`${origin.origin}/p`, { dispatcher: agent, query: { q: 'a b', empty: null } })
    expect(await viaOption.body.text()).toBe('1 GET /p?q=a%20b&empty= ')
    expect(statusOf((await fetchText(`${origin.origin}/p?q=a%20b&empty=`, agent)))).toBe('hit')
    expect(statusOf((await fetchText(`${origin.origin}/p?q=a+b&empty=`, agent)))).toBe('miss') // another target
    expect(statusOf((await fetchText(`${origin.origin}/p?q=a%20b`, agent)))).toBe('miss')
  })
})

describe('request matching: headers', () => {
  it('matchHeaders: a list keys those request headers, their name case and list spacing normalised', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ matchHeaders: ['Accept'] })
    await fetchText(origin.url, agent, { headers: { accept: 'text/plain, application/json' } })
    const same = await fetchText(origin.url, agent, { headers: { ACCEPT: 'text/plain ,application/json ' } })
    const other = await fetchText(origin.url, agent, { headers: { accept: 'application/json' } })
    const absent = await fetchText(origin.url, agent)
    const unlisted = await fetchText(origin.url, agent, { headers: { accept: 'application/json', 'x-trace': '1' } })
    expect([same, other, absent, unlisted].map(statusOf)).toEqual(['hit', 'miss', 'miss', 'hit'])
    expect(origin.requests).toBe(3)
  })

  it('matchHeaders: true keys every request header except the ignored ones', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ matchHeaders: true, ignoredParameters: ['auth-token'] })
    await fetchText(origin.url, agent, { headers: { 'auth-token': '2F63E5DF4F44', 'x-view': 'a' } })
    const tokenOnly = await fetchText(origin.url, agent, { headers: { 'auth-token': 'D9FAEB3449D3', 'x-view': 'a' } })
    const otherHeader = await fetchText(origin.url, agent, { headers: { 'auth-token': 'D9FAEB3449D3', 'x-view': 'b' } })
    expect([tokenOnly, otherHeader].map(statusOf)).toEqual(['hit', 'miss'])
    expect(origin.requests).toBe(2)
  })

  it('without matchHeaders, request headers do not take part unless Vary names them', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    await fetchText(origin.url, agent, { headers: { accept: 'text/plain' } })
    const second = await fetchText(origin.url, agent, { headers: { accept: 'application/json' } })
    expect(cacheInfo(second.headers).status).toBe('hit')
    expect(origin.requests).toBe(1)
  })
})

describe('request matching: methods cached with their body', () => {
  it('caches POST keyed by its JSON body, members in any order, ignored members left out', async () => {
    const origin = await startCountingOrigin()
    const store = new MapStore()
    const agent = createTestAgent({ store, methods: ['GET', 'HEAD', 'POST'], ignoredParameters: ['auth-token'] })
    const post = (body: unknown) =>
      fetchText(`${origin.url}graphql`, agent, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const first = await post({ query: '{ me }', variables: { a: 1, b: 2 }, 'auth-token': '2F63E5DF4F44' })
    const reordered = await post({ 'auth-token': 'D9FAEB3449D3', variables: { b: 2, a: 1 }, query: '{ me }' })
    const otherQuery = await post({ query: '{ you }' })
    expect(reordered.body).toBe(first.body)
    expect(cacheInfo(reordered.headers).status).toBe('hit')
    expect(cacheInfo(otherQuery.headers).status).toBe('miss')
    expect(origin.requests).toBe(2)
    // The origin got the body as sent; the stored request body is normalised and redacted.
    expect(first.body).toContain('"auth-token":"2F63E5DF4F44"')
    const stored = storedResponses(store).find((entry) => entry.requestBody && Buffer.from(entry.requestBody).includes('me'))
    expect(Buffer.from(stored!.requestBody!).toString()).toBe('{"query":"{ me }","variables":{"a":1,"b":2}}')
    expect(stored!.method).toBe('POST')
  })

  it('caches POST keyed by its form body, fields sorted, ignored ones left out', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ methods: ['GET', 'POST'], ignoredParameters: ['api_key'] })
    const post = (body: string) =>
      fetchText(`${origin.url}form`, agent, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body })
    await post('b=2&a=1&api_key=secret')
    const reordered = await post('a=1&b=2')
    const other = await post('a=1&b=3')
    expect(cacheInfo(reordered.headers).status).toBe('hit')
    expect(cacheInfo(other.headers).status).toBe('miss')
    expect(origin.requests).toBe(2)
  })

  it('caches POST sent with fetch, whose body reaches the cache as a stream', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ methods: ['GET', 'POST'] })
    const post = async (body: string) => {
      const response = await fetch(`${origin.url}api`, { dispatcher: agent, method: 'POST', body })
      return { text: await response.text(), status: cacheInfo(response.headers).status }
    }
    const first = await post('one')
    const again = await post('one')
    const other = await post('two')
    expect(first.text).toMatch(/^1 POST \/api one$/)
    expect(again).toEqual({ text: first.text, status: 'hit' })
    expect(other.text).toMatch(/^2 POST \/api two$/)
    expect(origin.requests).toBe(2)
  })

  it('caches QUERY (a safe method with a body) when listed', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ methods: ['GET', 'QUERY'] })
    const query = (body: string) => fetchText(`${origin.url}items`, agent, { method: 'QUERY' as never, headers: { 'content-type': 'text/plain' }, body })
    await query('select 1')
    const again = await query('select 1')
    expect(cacheInfo(again.headers).status).toBe('hit')
    expect(again.body).toBe('1 QUERY /items select 1')
    expect(origin.requests).toBe(1)
  })

  it('sends a body too large to key to the origin whole and uncached', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ methods: ['GET', 'POST'] })
    const large = 'x'.repeat(1024 * 1024 + 1)
    const first = await fetchText(`${origin.url}upload`, agent, { method: 'POST', body: large })
    const streamed = await fetch(`${origin.url}upload`, { dispatcher: agent, method: 'POST', body: large })
    expect(first.body.length).toBe('1 POST /upload '.length + large.length)
    expect((await streamed.text()).length).toBe('2 POST /upload '.length + large.length)
    expect(cacheInfo(first.headers).status).toBe('bypass')
    expect(origin.requests).toBe(2)
  })

  it('does not invalidate the URL when POST is a cached method, and does when it is not', async () => {
    const origin = await startCountingOrigin()
    const cachingPost = createTestAgent({ methods: ['GET', 'POST'] })
    const plain = createTestAgent()
    for (const agent of [cachingPost, plain]) {
      await fetchText(`${origin.url}thing`, agent)
      await fetchText(`${origin.url}thing`, agent, { method: 'POST', body: 'x' })
    }
    expect(cacheInfo((await fetchText(`${origin.url}thing`, cachingPost)).headers).status).toBe('hit')
    expect(cacheInfo((await fetchText(`${origin.url}thing`, plain)).headers).status).toBe('miss')
  })

  it('revalidates a stale POST entry in the background with its body (stale-while-revalidate)', async () => {
    const clock = useFakeDate()
    const bodies: string[] = []
    const origin = await startOrigin(async (request, response) => {
      let body = ''
      for await (const chunk of request) body += chunk
      bodies.push(`${request.method} ${body}`)
      response.setHeader('cache-control', 'max-age=1, stale-while-revalidate=60')
      response.end(`version ${bodies.length}`)
    })
    const agent = createTestAgent({ methods: ['GET', 'POST'] })
    const post = () => fetchText(`${origin.url}report`, agent, { method: 'POST', body: 'q=1' })
    await post()
    clock.advance(2_000)
    const stale = await post()
    expect(stale.body).toBe('version 1')
    await expect.poll(() => bodies).toEqual(['POST q=1', 'POST q=1'])
    await expect.poll(async () => (await post()).body).toBe('version 2')
  })

  it('fails a request whose body stream fails, as it would fail without the cache', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ methods: ['GET', 'POST'] })
    async function* brokenBody() {
      yield Buffer.from('start')
      throw new Error('the body broke')
    }
    await expect(request(`${origin.url}api`, { dispatcher: agent, method: 'POST', body: Readable.from(brokenBody()) })).rejects.toThrow('the body broke')
    const after = await fetchText(`${origin.url}api`, agent, { method: 'POST', body: 'fine' })
    expect(after.body).toMatch(/POST \/api fine$/)
  })

  it('keeps JSON numbers apart that JavaScript numbers would make one (beyond 2^53, beyond a double)', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
    const post = (body: string) => fetchText(`${origin.url}rpc`, agent, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    for (const [body, twin] of [['{"id": 9007199254740993}', '{"id": 9007199254740992}'], ['{"amount": 1e400}', '{"amount": null}']]) {
      await post(body!)
      const other = await post(twin!)
      expect(other.body).toMatch(new RegExp(`${twin!.replace(/[{}]/g, '\\$&')}$`))
      expect(statusOf(other)).toBe('miss')
      expect(statusOf(await post(` ${body!.replace(': ', ':')}`))).toBe('hit') // the same JSON, written otherwise
    }
  })

  it('sends a multipart body (a FormData through fetch) uncached, and stores none of its fields', async () => {
    const origin = await startCountingOrigin()
    const store = new MapStore()
    const agent = createTestAgent({ store, methods: ['GET', 'HEAD', 'POST'] })
    for (let round = 0; round < 2; round++) {
      const form = new FormData()
      form.append('api_key', 'SECRET')
      const response = await fetch(`${origin.url}upload`, { dispatcher: agent, method: 'POST', body: form })
      expect(await response.text()).toMatch(/SECRET/) // the origin got the body
      expect(cacheInfo(response.headers).status).toBe('bypass')
    }
    expect(store.entries.size).toBe(0)
  })

  it('does not cache POST unless listed in methods', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent()
    await fetchText(`${origin.url}api`, agent, { method: 'POST', body: 'one' })
    const second = await fetchText(`${origin.url}api`, agent, { method: 'POST', body: 'one' })
    expect(cacheInfo(second.headers).status).toBe('miss') // fwd=method: not 'bypass' (issue #16)
    expect(origin.requests).toBe(2)
  })
})

describe('request matching: custom key functions', () => {
  it('takes key: createKey as the default key function, ignored parameters and all', async () => {
    const origin = await startCountingOrigin()
    // As JavaScript passes it: createKey's own second parameter is KeyOptions, not the helpers.
    const agent = createTestAgent({ key: createKey as unknown as CachingAgentOptions['key'], ignoredParameters: ['access_token'] })
    await fetchText(`${origin.url}me?access_token=one`, agent)
    const rotated = await fetchText(`${origin.url}me?access_token=two`, agent)
    expect(statusOf(rotated)).toBe('hit')
    expect(origin.requests).toBe(1)
  })

  // requests-cache's example: only "gzip or not" of Accept-Encoding matters, the rest is the default key.
  function gzipOrNothing(request: CacheRequest, helpers: { createKey(request: CacheRequest): string }): string {
    const acceptEncoding = request.headers['accept-encoding'] ?? ''
    const headers = { ...request.headers }
    if (acceptEncoding.includes('gzip')) headers['accept-encoding'] = 'gzip'
    else delete headers['accept-encoding']
    return helpers.createKey({ ...request, headers })
  }

  it('normalises a matched header and delegates the rest to createKey', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ key: gzipOrNothing, matchHeaders: ['Accept-Encoding'] })
    await fetchText(origin.url, agent, { headers: { 'accept-encoding': 'gzip, compress, br' } })
    const gzipOnly = await fetchText(origin.url, agent, { headers: { 'accept-encoding': 'gzip' } })
    const identity = await fetchText(origin.url, agent, { headers: { 'accept-encoding': 'identity' } })
    const none = await fetchText(origin.url, agent)
    expect([gzipOnly, identity, none].map(statusOf)).toEqual(['hit', 'miss', 'hit'])
    expect(origin.requests).toBe(2)
  })

  it('lets a custom key decide which URLs share a response, and says the key in Cache-Status', async () => {
    const origin = await startCountingOrigin()
    const agent = createTestAgent({ key: (request) => `page "${new URL(request.url).pathname}"` })
    await fetchText(`${origin.url}a?utm_source=mail`, agent)
    const second = await fetchText(`${origin.url}a?utm_source=web`, agent)
    expect(cacheInfo(second.headers)).toMatchObject({ status: 'hit', cacheKey: 'page "/a"' })
    expect(origin.requests).toBe(1)
  })

  it.each([
    ['throws', () => {
      throw new Error('bug in the key function')
    }],
    ['returns a number', () => 42 as unknown as string],
    ['returns an empty string', () => ''],
  ])('sends the request uncached when the key function %s', async (_case, key) => {
    const origin = await startCountingOrigin()
    const store = new MapStore()
    const agent = createTestAgent({ store, key })
    const first = await fetchText(origin.url, agent)
    const second = await fetchText(origin.url, agent)
    expect([first.status, second.status]).toEqual([200, 200])
    expect(cacheInfo(second.headers).status).toBe('bypass')
    expect(origin.requests).toBe(2)
    expect(store.entries.size).toBe(0)
  })
})

describe('createKey', () => {
  const get = (url: string, headers: Record<string, string> = {}): CacheRequest => ({ method: 'GET', url, headers })

  it('normalises what does not change the resource', () => {
    const key = createKey(get('http://example.com/a?b=2&a=1'))
    expect(createKey(get('HTTP://EXAMPLE.com:80/a?a=1&b=2#section'))).toBe(key)
    expect(createKey(get('http://example.com/a?a=1&b=2#'))).toBe(key) // an empty fragment too
    expect(createKey({ ...get('http://example.com/a?a=1&b=2'), method: 'HEAD' })).toBe(key)
    expect(createKey(get('http://example.com/a?a=1&b=3'))).not.toBe(key)
    expect(createKey(get('http://example.com/A?a=1&b=2'))).not.toBe(key)
    expect(createKey(get('https://example.com/a?a=1&b=2'))).not.toBe(key)
    expect(createKey({ ...get('http://example.com/a?a=1&b=2'), method: 'POST', body: new Uint8Array() })).not.toBe(key)
  })

  it('keeps apart query values an origin can tell apart', () => {
    expect(createKey(get('http://example.com/?q=a+b'))).not.toBe(createKey(get('http://example.com/?q=a%2Bb')))
  })

  it('is a full-length SHA-256 digest', () => {
    expect(createKey(get('http://example.com/'))).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  it('takes ignoredParameters and matchHeaders', () => {
    const options = { ignoredParameters: ['token'], matchHeaders: ['Accept'] }
    const key = createKey(get('http://example.com/?token=1', { accept: 'a' }), options)
    expect(createKey(get('http://example.com/?TOKEN=2', { accept: 'a', other: 'x' }), options)).toBe(key)
    expect(createKey(get('http://example.com/?token=1', { accept: 'b' }), options)).not.toBe(key)
  })
})
