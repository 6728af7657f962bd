import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, fetch, request } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import { cacheInterceptor, MemoryStore, SqliteStore, type CacheStore, type StoredResponse } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { MapStore } from './helpers/map-store.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'
import { redactionOf } from '../lib/keys/redaction.js'
import { removeDatabaseDirectory } from './helpers/sqlite-file.js'

/** An origin that stores for a minute, varies on Accept under /vary/, and names the request in its body. */
async function startOrigins(): Promise<Origin> {
  return startOrigin(async (incoming, response) => {
    let body = ''
    for await (const chunk of incoming) body += chunk
    response.setHeader('cache-control', 'max-age=60')
    if (incoming.url?.startsWith('/vary/')) response.setHeader('vary', 'accept')
    response.end(`${incoming.method} ${incoming.url} ${incoming.headers.accept ?? ''} ${body}`)
  })
}

/** A SqliteStore in a temporary directory, closed and removed when the test ends. */
function openSqliteStore(): SqliteStore {
  const directory = mkdtempSync(join(tmpdir(), 'undici-http-cache-inspection-'))
  const store = new SqliteStore({ path: join(directory, 'cache.db') })
  onTestFinished(() => {
    store.close()
    removeDatabaseDirectory(directory)
  })
  return store
}

async function collect(entries: AsyncIterable<StoredResponse>): Promise<StoredResponse[]> {
  const all = []
  for await (const entry of entries) all.push(entry)
  return all
}

describe('cache inspection', () => {
  it('lists the URLs of stored responses, once each, sorted, without ignored parameters, redacted values as digests', async () => {
    const origin = await startOrigins()
    const agent = createTestAgent({ ignoredParameters: ['session'] })
    await get(`${origin.url}b?access_token=secret&session=1&x=1`, agent)
    await get(`${origin.url}a`, agent)
    await get(`${origin.url}vary/c`, agent, { headers: { accept: 'text/plain' } })
    await get(`${origin.url}vary/c`, agent, { headers: { accept: 'application/json' } })
    await get(`${origin.url}a`, agent, { method: 'HEAD' })
    const redacted = `access_token=${redactionOf('secret')}`
    expect(await agent.cache.urls()).toEqual([`${origin.url}a`, `${origin.url}b?${redacted}&x=1`, `${origin.url}vary/c`])
  })

  it('iterates every stored response with its request method, URL, status, headers, body and dates', async () => {
    useFakeDate()
    const origin = await startOrigins()
    const agent = createTestAgent({ methods: ['GET', 'POST'] })
    await get(`${origin.url}page`, agent)
    await get(`${origin.url}search`, agent, { method: 'POST', body: 'q=1' })
    await get(`${origin.url}search`, agent, { method: 'POST', body: 'q=2' })
    const entries = await collect(agent.cache.entries())
    expect(entries).toHaveLength(3)
    // requests-cache's example: all URLs requested with POST.
    const postUrls = entries.filter((entry) => entry.method === 'POST').map((entry) => entry.url)
    expect(postUrls).toEqual([`${origin.url}search`, `${origin.url}search`])
    const page = entries.find((entry) => entry.method === 'GET')!
    expect(page).toMatchObject({ url: `${origin.url}page`, status: 200, headers: { 'cache-control': 'max-age=60' } })
    expect(Buffer.from(page.body).toString()).toBe('GET /page  ')
    expect(page.createdAt).toEqual(new Date())
    expect(page.expires).toEqual(new Date(Date.now() + 60_000))
  })

  it('gets the stored response a request would be served, following Vary, for GET and POST', async () => {
    const origin = await startOrigins()
    const agent = createTestAgent({ methods: ['GET', 'HEAD', 'POST'] })
    await get(`${origin.url}vary/x`, agent, { headers: { accept: 'text/plain' } })
    await get(`${origin.url}api`, agent, { method: 'POST', body: 'one' })
    const text = await agent.cache.get(`${origin.url}vary/x`, { headers: { Accept: 'text/plain' } })
    expect(Buffer.from(text!.body).toString()).toBe('GET /vary/x text/plain ')
    const listed: string[] = []
    for await (const entry of agent.cache.entries()) if (entry.url === `${origin.url}vary/x`) listed.push(entry.key)
    expect(listed).toEqual([text!.key]) // the key it is stored under, as entries() gives it: the variant's
    expect(await agent.cache.get(`${origin.url}vary/x`, { headers: { accept: 'application/json' } })).toBeUndefined()
    expect(await agent.cache.get(`${origin.url}vary/x`, { method: 'HEAD', headers: { accept: 'text/plain' } })).toMatchObject({ method: 'GET' })
    expect(await agent.cache.get(`${origin.url}api`, { method: 'POST', body: 'one' })).toMatchObject({ method: 'POST', status: 200 })
    expect(await agent.cache.get(`${origin.url}api`, { method: 'POST', body: 'two' })).toBeUndefined()
    expect(await agent.cache.get(`${origin.url}never`)).toBeUndefined()
    // A fragment never reaches the origin, so it is no part of what is stored.
    expect(await agent.cache.get(`${origin.url}vary/x#part`, { headers: { accept: 'text/plain' } })).toMatchObject({ status: 200 })
  })

  it('deletes every stored response for a URL, all variants, and the next request goes to the origin', async () => {
    const origin = await startOrigins()
    const agent = createTestAgent()
    for (const accept of ['a', 'b']) await get(`${origin.url}vary/x`, agent, { headers: { accept } })
    await get(`${origin.url}other`, agent)
    expect(await agent.cache.delete(`${origin.url}vary/x`)).toBe(2)
    expect(await agent.cache.urls()).toEqual([`${origin.url}other`])
    expect(statusOf((await get(`${origin.url}vary/x`, agent, { headers: { accept: 'a' } })).headers)).toBe('miss')
    expect(origin.requests).toBe(4)
  })

  it('deletes one variant of a URL and keeps the others servable', async () => {
    const clock = useFakeDate()
    const origin = await startOrigins()
    const agent = createTestAgent()
    await get(`${origin.url}vary/x`, agent, { headers: { accept: 'old' } })
    clock.advance(10_000)
    await get(`${origin.url}vary/x`, agent, { headers: { accept: 'new' } })
    expect(await agent.cache.delete({ olderThan: 5_000 })).toBe(1)
    expect(statusOf((await get(`${origin.url}vary/x`, agent, { headers: { accept: 'new' } })).headers)).toBe('hit')
    expect(statusOf((await get(`${origin.url}vary/x`, agent, { headers: { accept: 'old' } })).headers)).toBe('miss')
  })

  it('deletes by RegExp, by expiry and by age, counting what it removed', async () => {
    const clock = useFakeDate()
    const origin = await startOrigin((incoming, response) => {
      response.setHeader('cache-control', incoming.url === '/short' ? 'max-age=1' : 'max-age=600')
      response.end('x')
    })
    const agent = createTestAgent()
    await get(`${origin.url}short`, agent)
    await get(`${origin.url}api/one`, agent)
    clock.advance(5_000)
    await get(`${origin.url}api/two`, agent)
    await get(`${origin.url}recent`, agent)
    expect(await agent.cache.delete({ expired: true })).toBe(1)
    expect(await agent.cache.delete({ olderThan: 3_000 })).toBe(1) // api/one, stored 5 s ago
    expect(await agent.cache.delete(/\/api\//)).toBe(1)
    expect(await agent.cache.urls()).toEqual([`${origin.url}recent`])
    expect(await agent.cache.delete(`${origin.url}nothing`)).toBe(0)
  })

  it('deletes every match of a RegExp with the g flag (which would make test() skip every other one)', async () => {
    const origin = await startOrigins()
    const agent = createTestAgent()
    for (const path of ['api/a', 'api/b', 'api/c', 'other']) await get(`${origin.url}${path}`, agent)
    expect(await agent.cache.delete(/\/api\//g)).toBe(3)
    expect(await agent.cache.urls()).toEqual([`${origin.url}other`])
  })

  it('refuses what delete() cannot take', async () => {
    const agent = createTestAgent()
    await expect(agent.cache.delete({ expired: false } as never)).rejects.toThrow(TypeError)
    await expect(agent.cache.delete(42 as never)).rejects.toThrow('cache.delete() takes a URL, a RegExp')
  })

  it('clears everything', async () => {
    const origin = await startOrigins()
    const store = new MemoryStore()
    const agent = createTestAgent({ store })
    await get(`${origin.url}a`, agent)
    await agent.cache.clear()
    expect(store.size).toBe(0)
    expect(await agent.cache.urls()).toEqual([])
  })

  it('rejects an inspection call whose store fails, and counts it, while requests still succeed', async () => {
    const origin = await startOrigins()
    const broken: CacheStore = {
      get: () => undefined,
      set: () => {},
      delete: () => {},
      keys: () => Promise.reject(new Error('store is down')),
      clear: () => {
        throw new Error('store is down')
      },
    }
    const agent = createTestAgent({ store: broken })
    await expect(agent.cache.urls()).rejects.toThrow('store is down')
    await expect(agent.cache.clear()).rejects.toThrow('store is down')
    expect(agent.cache.stats.errors).toBe(2)
    expect((await get(origin.url, agent)).status).toBe(200)
  })

  it('is the same on cacheInterceptor(...).cache, for a Client', async () => {
    const origin = await startOrigins()
    const interceptor = cacheInterceptor({ store: new MemoryStore() })
    const client = new Client(origin.origin).compose(interceptor)
    await (await request(`${origin.url}via-client`, { dispatcher: client })).body.text()
    expect(await interceptor.cache.urls()).toEqual([`${origin.url}via-client`])
    expect(interceptor.cache.stats).toMatchObject({ misses: 1, stored: 1 })
    await client.close()
  })

  // get() and entries() handed out the stored entry's own headers and body: a user redacting what they
  // logged changed what later hits served.
  it.each([
    ['MemoryStore', () => new MemoryStore()],
    ['SqliteStore', () => openSqliteStore()],
  ])('hands out copies: changing what get() and entries() return changes nothing served (%s)', async (_name, openStore) => {
    const origin = await startOrigin((_incoming, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] })
      response.end('original body')
    })
    const agent = createTestAgent({ store: openStore() })
    await get(origin.url, agent)
    await get(origin.url, agent) // a hit: the store keeps the entry object, which later hits serve
    const seen = [...(await collect(agent.cache.entries())), (await agent.cache.get(origin.url))!]
    for (const response of seen) {
      response.headers['content-type'] = 'REDACTED'
      ;(response.headers['set-cookie'] as string[])[0] = 'REDACTED'
      response.body.fill(42)
    }
    const hit = await get(origin.url, agent)
    expect([statusOf(hit.headers), hit.headers['content-type'], hit.headers['set-cookie'], hit.body]).toEqual([
      'hit',
      'text/plain',
      ['a=1', 'b=2'],
      'original body',
    ])
  })

  it('lists each hop of a followed redirect', async () => {
    const origin = await startOrigin((incoming, response) => {
      response.setHeader('cache-control', 'max-age=60')
      if (incoming.url === '/from') response.writeHead(301, { location: '/to' })
      response.end('here')
    })
    const agent = createTestAgent()
    const response = await fetch(`${origin.url}from`, { dispatcher: agent })
    expect(await response.text()).toBe('here')
    expect(await agent.cache.urls()).toEqual([`${origin.url}from`, `${origin.url}to`])
  })
})

describe('recreateKeys', () => {
  it('re-keys stored responses after the matching options changed, so that they are served again', async () => {
    const origin = await startOrigins()
    const store = new MapStore()
    const before = createTestAgent({ store })
    await get(`${origin.url}page?session=1`, before, { headers: { accept: 'text/plain' } })
    await get(`${origin.url}vary/x`, before, { headers: { accept: 'text/plain' } })
    // A new configuration over the same store: `session` is now ignored, Accept is matched.
    const after = createTestAgent({ store, ignoredParameters: ['session'], matchHeaders: ['Accept'] })
    expect(statusOf((await get(`${origin.url}page?session=2`, after, { headers: { accept: 'text/plain' } })).headers)).toBe('miss')
    await after.cache.delete(`${origin.url}page`) // forget the response the miss just stored
    expect(await after.cache.recreateKeys()).toBe(2)
    expect(await after.cache.urls()).toEqual([`${origin.url}page`, `${origin.url}vary/x`])
    const page = await get(`${origin.url}page?session=3`, after, { headers: { accept: 'text/plain' } })
    const varied = await get(`${origin.url}vary/x`, after, { headers: { accept: 'text/plain' } })
    expect([statusOf(page.headers), statusOf(varied.headers)]).toEqual(['hit', 'hit'])
    expect(page.body).toBe('GET /page?session=1 text/plain ')
    expect(await after.cache.recreateKeys()).toBe(0) // nothing left to move
    expect(store.entries.size).toBe(3) // two responses and the Vary record: nothing left behind
  })

  it('re-keys with a custom key function', async () => {
    const origin = await startOrigins()
    const store = new MapStore()
    await get(`${origin.url}a`, createTestAgent({ store }))
    const custom = createTestAgent({ store, key: (request) => `path:${new URL(request.url).pathname}` })
    expect(await custom.cache.recreateKeys()).toBe(1)
    expect([...store.entries.keys()]).toEqual(['path:/a'])
    expect(statusOf((await get(`${origin.url}a`, custom)).headers)).toBe('hit')
  })
})
