import { createServer, request as forwardRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { onTestFinished } from 'vitest'

export interface ForwardProxy {
  /** `http://127.0.0.1:<port>`, for `new ProxyAgent({ uri })`. */
  url: string
  /** Requests that reached the proxy so far. */
  readonly requests: number
}

/**
 * A real node:http forward proxy on 127.0.0.1, port 0: it takes absolute-form requests
 * (`GET http://host/path HTTP/1.1`), sends them on with node:http and pipes the answer back.
 * It does not tunnel (no CONNECT). Counts requests; closed when the test ends.
 */
export async function startForwardProxy(): Promise<ForwardProxy> {
  let requests = 0
  const server: Server = createServer((request, response) => {
    requests++
    const target = new URL(request.url ?? '/')
    const headers = { ...request.headers }
    delete headers['proxy-connection']
    const upstream = forwardRequest(target, { method: request.method, headers, agent: false }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(response)
    })
    upstream.on('error', (error) => response.destroy(error))
    request.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests() {
      return requests
    },
  }
}
