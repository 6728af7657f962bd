import type { OutgoingHttpHeaders } from 'node:http'
import { startOrigin, type Origin } from './origin.js'

/**
 * An origin whose every response has the given status and headers and the body "v1", "v2", … so a test
 * can tell a stored response from a new one. `headers` may be a function of the request count (from 1).
 */
export function startVersionedOrigin(
  headers: OutgoingHttpHeaders | ((count: number) => OutgoingHttpHeaders),
  status = 200,
): Promise<Origin> {
  let count = 0
  return startOrigin((_request, response) => {
    count++
    const fields = typeof headers === 'function' ? headers(count) : headers
    response.writeHead(status, fields)
    response.end(`v${count}`)
  })
}
