import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { onTestFinished } from 'vitest'

export interface Origin {
  /** `http://127.0.0.1:<port>` plus the path, default `/`. */
  url: string
  origin: string
  /** Requests that reached the origin so far. */
  readonly requests: number
  /** Each request's method, URL and headers, in order. */
  readonly received: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>
  /** Stops listening and closes every connection: later requests are refused. */
  stop(): Promise<void>
}

type OriginHandler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>

/** A real node:http origin on 127.0.0.1, port 0, that counts requests and is closed when the test ends. */
export async function startOrigin(handle: OriginHandler): Promise<Origin> {
  const received: Origin['received'] = []
  const server: Server = createServer((request, response) => {
    received.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers })
    Promise.resolve(handle(request, response)).catch((error: unknown) => {
      response.destroy(error instanceof Error ? error : new Error(String(error)))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  onTestFinished(stop)
  const origin = `http://127.0.0.1:${port}`
  return {
    url: `${origin}/`,
    origin,
    get requests() {
      return received.length
    },
    received,
    stop,
  }
}
