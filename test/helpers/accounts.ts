import { fetch, request, type Dispatcher } from 'undici'
import { cacheInfo } from '../../lib/index.js'
import { startOrigin, type Origin } from './origin.js'

export const ALICE = 'alice-s3cret-7f1e'
export const BOB = 'bob-s3cret-90ac'

/**
 * An origin that answers with whose account a request is for (found by the credential anywhere in it) and a
 * count, fresh for a minute; never the credential itself, so that the only copy a store could hold is the
 * cache's own. `/vary/...` varies on `Authorization`, `/public/...` is `public` (shared caches may share it).
 */
export async function startAccountOrigin(): Promise<Origin> {
  let served = 0
  return startOrigin(async (incoming, response) => {
    let body = ''
    for await (const chunk of incoming) body += chunk
    const seen = `${incoming.url} ${JSON.stringify(incoming.headers)} ${body}`
    const user = seen.includes(ALICE) ? 'alice' : seen.includes(BOB) ? 'bob' : 'nobody'
    response.setHeader('cache-control', incoming.url!.startsWith('/public/') ? 'public, max-age=60' : 'max-age=60')
    if (incoming.url!.startsWith('/vary/')) response.setHeader('vary', 'Authorization')
    response.end(`${++served} account of ${user}`)
  })
}

export type Via = 'request' | 'fetch'
export type SendOptions = { method?: string; headers?: Record<string, string>; body?: string }

/** One request through `agent` by undici's `request()` or `fetch()`: the body and the cache's verdict. */
export async function send(via: Via, url: string, agent: Dispatcher, options: SendOptions = {}): Promise<{ body: string; status: string | undefined; cacheStatus: string }> {
  if (via === 'fetch') {
    const response = await fetch(url, { dispatcher: agent, ...options })
    const body = await response.text()
    return { body, status: cacheInfo(response.headers).status, cacheStatus: response.headers.get('cache-status') ?? '' }
  }
  const response = await request(url, { dispatcher: agent, ...(options as Dispatcher.RequestOptions) })
  const body = await response.body.text()
  return { body, status: cacheInfo(response.headers).status, cacheStatus: String(response.headers['cache-status'] ?? '') }
}

/** An `Authorization` header with a bearer token. */
export const bearer = (secret: string): Record<string, string> => ({ authorization: `Bearer ${secret}` })
