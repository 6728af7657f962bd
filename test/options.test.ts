import { describe, expect, it } from 'vitest'
import { cacheInterceptor, CachingAgent, MemoryStore } from '../lib/index.js'

describe('options', () => {
  it.each([
    [{ shared: 'yes' }, 'options.shared must be a boolean, received "yes"'],
    [{ methods: 'GET' }, 'options.methods must be an array of method names, received "GET"'],
    [{ methods: ['GET', 'two words'] }, 'options.methods must be an array of method names, received ["GET", "two words"]'],
    [{ methods: ['CONNECT'] }, 'options.methods cannot hold "CONNECT": a tunnel has no response to cache'],
    [{ key: 'url' }, 'options.key must be a function (request, helpers) => string, received "url"'],
    [{ ignoredParameters: 'token' }, 'options.ignoredParameters must be an array of names, received "token"'],
    [{ ignoredParameters: [''] }, 'options.ignoredParameters must be an array of names, received [""]'],
    [{ redactedParameters: 'token' }, 'options.redactedParameters must be an array of names, received "token"'],
    [{ matchHeaders: 'accept' }, 'options.matchHeaders must be true, false or an array of header names, received "accept"'],
    [{ matchHeaders: ['bad header'] }, 'options.matchHeaders must be true, false or an array of header names, received ["bad header"]'],
    [{ ignoredParameters: ['Authorization'], matchHeaders: ['Accept', 'Authorization'] }, 'options.matchHeaders names "authorization", which options.ignoredParameters leaves out of keys: pass ignoredParameters without it'],
    [{ cacheStatus: 'two words' }, 'options.cacheStatus must be a token such as "my-cache", or false, received "two words"'],
    [{ cacheStatus: true }, 'options.cacheStatus must be a token such as "my-cache", or false, received true'],
    [{ store: {} }, 'options.store must implement CacheStore (get, set, delete, keys, clear), received an object missing get, set, delete, keys, clear'],
    [{ store: null }, 'options.store must implement CacheStore (get, set, delete, keys, clear), received null'],
    [{ sharedd: true }, 'unknown option "sharedd"'],
    [{ coalesce: 'yes' }, 'options.coalesce must be a boolean, received "yes"'],
    [{ staleIfError: -1 }, 'options.staleIfError must be a boolean or a whole number of seconds, received -1'],
    [{ staleIfError: '60' }, 'options.staleIfError must be a boolean or a whole number of seconds, received "60"'],
    [{ defaultTtl: -5 }, 'options.defaultTtl must be a non-negative number of seconds, received -5'],
    [{ defaultTTL: 60 }, 'unknown option "defaultTTL"'],
    [{ filter: true }, 'options.filter must be a function (request, response) => boolean, received true'],
    [{ urlsExpireAfter: {} }, 'options.urlsExpireAfter must be an array of [pattern, ttl] pairs, received an object'],
    [{ urlsExpireAfter: [['*.example.com/*', 60], ['', 60]] }, 'options.urlsExpireAfter[1] must be a [pattern, ttl] pair: a glob or RegExp, and seconds, "never" or "no-store", received ["", 60]'],
    [{ urlsExpireAfter: [[/x/, 'forever']] }, 'options.urlsExpireAfter[0] must be a [pattern, ttl] pair: a glob or RegExp, and seconds, "never" or "no-store", received [an instance of RegExp, "forever"]'],
    [{ urlsExpireAfter: [['https://example.com/*', 60]] }, 'options.urlsExpireAfter[0] must be a [pattern, ttl] pair: a glob or RegExp, and seconds, "never" or "no-store", received ["https://example.com/*", 60]'],
    [{ allowedStatuses: [200, 206] }, 'options.allowedStatuses must be an array of final statuses other than 206 and 304, received [200, 206]'],
    [{ allowedStatuses: [103] }, 'options.allowedStatuses must be an array of final statuses other than 206 and 304, received [103]'],
  ])('cacheInterceptor(%j) throws a TypeError naming the option', (options, message) => {
    expect(() => cacheInterceptor(options as never)).toThrow(TypeError)
    expect(() => cacheInterceptor(options as never)).toThrow(message)
  })

  it('refuses options that are not an object', () => {
    expect(() => cacheInterceptor('fast' as never)).toThrow(new TypeError('options must be an object, received "fast"'))
    expect(() => new CachingAgent([] as never)).toThrow(new TypeError('options must be an object, received []'))
  })

  it('checks the CachingAgent options of its own', () => {
    expect(() => new CachingAgent({ dispatcher: {} as never })).toThrow('options.dispatcher must be an undici Dispatcher, received an object')
    expect(() => new CachingAgent({ agentOptions: 5 as never })).toThrow('options.agentOptions must be an object of undici Agent options, received 5')
    expect(() => cacheInterceptor({ dispatcher: {} } as never)).toThrow('unknown option "dispatcher"')
  })

  it.each([
    [{ maxSize: '64mb' }, 'MemoryStore options.maxSize must be a positive integer (bytes), received "64mb"'],
    [{ maxSize: 0 }, 'MemoryStore options.maxSize must be a positive integer (bytes), received 0'],
    [{ maxEntrySize: 1.5 }, 'MemoryStore options.maxEntrySize must be a positive integer (bytes), received 1.5'],
    [{ maxCount: -1 }, 'MemoryStore options.maxCount must be a positive integer (entries), received -1'],
    [{ maxSize: 1000, maxEntrySize: 2000 }, 'MemoryStore options.maxEntrySize (2000) must not exceed options.maxSize (1000)'],
    [{ maxsize: 1 }, 'unknown option "maxsize"'],
  ])('new MemoryStore(%j) throws a TypeError naming the option', (options, message) => {
    expect(() => new MemoryStore(options as never)).toThrow(new TypeError(message))
  })

  it('accepts the documented defaults', () => {
    const store = new MemoryStore()
    expect([store.maxSize, store.maxEntrySize]).toEqual([64 * 1024 * 1024, 8 * 1024 * 1024])
    expect(() => cacheInterceptor({ shared: true, methods: ['get', 'HEAD', 'POST', 'QUERY'], cacheStatus: false, store })).not.toThrow()
    expect(() => cacheInterceptor({ key: () => 'k', ignoredParameters: [], matchHeaders: ['Accept'] })).not.toThrow()
    expect(() =>
      cacheInterceptor({ filter: () => true, defaultTtl: 0, urlsExpireAfter: [['*/a', 'never'], [/b/, 'no-store']], allowedStatuses: [200, 500] }),
    ).not.toThrow()
  })
})
