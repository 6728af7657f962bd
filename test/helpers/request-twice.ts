import { createTestAgent } from './agent.js'
import { fetchText as get } from './request.js'
import { startVersionedOrigin } from './versioned-origin.js'

/** Sends a request twice and returns how many reached the origin, and the second response. */
export async function requestTwice(
  responseHeaders: Record<string, string>,
  options: { shared?: boolean; status?: number; requestHeaders?: Record<string, string> } = {},
) {
  const origin = await startVersionedOrigin(responseHeaders, options.status)
  const agent = createTestAgent({ shared: options.shared ?? false })
  const first = await get(origin.url, agent, { headers: options.requestHeaders ?? {} })
  const second = await get(origin.url, agent, { headers: options.requestHeaders ?? {} })
  return { originRequests: origin.requests, first, second }
}

