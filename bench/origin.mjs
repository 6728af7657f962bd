// The bench's origin, run in a child process of its own as a real origin would be (issue #17): the
// parent's measured time then holds the client and the cache, not the origin's request parsing and writes.
// `node bench/origin.mjs 1024,65536` listens on 127.0.0.1 at a free port and sends `{ port }` to its
// parent over IPC; it answers `{ requests }` when asked `'count'`.
//
// `/…?size=N` answers N bytes with `Cache-Control: max-age=3600`; `&store=no` answers
// `Cache-Control: no-store` instead; `&delayMs=N` answers after N ms, as an origin with latency would;
// `&fields=N` adds N fields (see extraFields), `&unique=yes` with values of the URL's own.
import { createServer } from 'node:http'

const bodies = new Map(process.argv[2].split(',').map((size) => [Number(size), Buffer.alloc(Number(size), 'x')]))
const CACHE_CONTROL = { yes: 'max-age=3600', no: 'no-store' }
let requests = 0

const server = createServer((request, response) => {
  requests++
  const query = new URL(request.url, 'http://origin').searchParams
  const respond = () => {
    response.writeHead(200, {
      'cache-control': CACHE_CONTROL[query.get('store') ?? 'yes'],
      'content-type': 'application/octet-stream',
      ...extraFields(request.url, Number(query.get('fields') ?? 0), query.get('unique') === 'yes'),
    })
    response.end(bodies.get(Number(query.get('size'))))
  }
  const delayMs = Number(query.get('delayMs') ?? 0)
  if (delayMs > 0) setTimeout(respond, delayMs)
  else respond()
})
server.keepAliveTimeout = 60_000

/**
 * `count` more fields, as many responses have: an `ETag` of the URL's own, and fields whose values repeat
 * from one response to the next, or (`unique`) are the URL's own too.
 */
function extraFields(url, count, unique) {
  if (count === 0) return {}
  const value = unique ? (index) => `value ${index} of ${url}` : (index) => `value ${index}`
  return Object.fromEntries([['etag', `"${url}"`], ...Array.from({ length: count - 1 }, (_, index) => [`x-field-${index}`, value(index)])])
}

server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('message', (message) => {
  if (message === 'count') process.send({ requests })
})
// The parent disconnects when it is done (or dies): then so does the origin.
process.on('disconnect', () => process.exit(0))
