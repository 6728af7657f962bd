import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createClient, type RedisClientType } from 'redis'

/** Where the shared Redis is: `REDIS_URL`, or the local default. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/**
 * Whether the Redis at `REDIS_URL` answers. Without one, RedisStore tests skip with one clear line on a
 * user's machine; under `CI=true` an unreachable Redis fails the run instead.
 */
export async function isRedisReachable(): Promise<boolean> {
  const client = createClient({ url: REDIS_URL, socket: { connectTimeout: 1000, reconnectStrategy: false } })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return true
  } catch {
    return false
  } finally {
    if (client.isOpen) client.destroy()
  }
}

let prefixes = 0
/** A key prefix no other test run uses, so that runs sharing one Redis never see each other's entries. */
export function uniquePrefix(): string {
  return `undici-http-cache-test:${process.pid}:${Date.now()}:${prefixes++}:`
}

/** A connected node-redis client that survives its server going away (errors are expected then, not thrown). */
export async function connectNodeRedis(url = REDIS_URL): Promise<RedisClientType> {
  const client: RedisClientType = createClient({ url, socket: { reconnectStrategy: (retries) => Math.min(retries * 20, 200) } })
  client.on('error', () => {}) // reconnection errors while the server is down are the point of some tests
  await client.connect()
  return client
}

/** A redis-server of the test's own on a spare port, which the test may stop and start again. */
export interface OwnRedisServer {
  url: string
  stop(): Promise<void>
  start(): Promise<void>
}

export async function startOwnRedisServer(): Promise<OwnRedisServer> {
  const port = await sparePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'pipe' })
    let output = ''
    child.stdout!.on('data', (chunk) => (output += chunk))
    while (!output.includes('Ready to accept connections')) {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`)
      await once(child.stdout!, 'data')
    }
  }
  const stop = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
  await start()
  return { url: `redis://127.0.0.1:${port}`, start, stop }
}

async function sparePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}
