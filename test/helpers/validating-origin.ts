import type { OutgoingHttpHeaders } from 'node:http'
import { startOrigin, type Origin } from './origin.js'

export interface Representation {
  body: string | Buffer
  /** Sent as `ETag` and compared with `If-None-Match`. */
  etag?: string
  /** Sent as `Last-Modified` and compared with `If-Modified-Since`. */
  lastModified?: string
  /** Sent with every answer, 200 or 304. */
  headers?: OutgoingHttpHeaders
  /** Sent with a 304 only, after `headers` (to show what a 304 may change). */
  notModifiedHeaders?: OutgoingHttpHeaders
}

export interface ValidatingOrigin extends Origin {
  /** The representation served from now on. */
  representation: Representation
  /** The status of each answer, in order. */
  readonly statuses: number[]
}

/**
 * An origin that validates as RFC 9110 §13 says: a request whose `If-None-Match` names the current ETag,
 * or (without `If-None-Match`) whose `If-Modified-Since` is not before `Last-Modified`, gets a 304 with no
 * body; anything else gets a 200 with the representation.
 */
export async function startValidatingOrigin(representation: Representation): Promise<ValidatingOrigin> {
  const statuses: number[] = []
  // Read at each request, so that a test can replace the representation between requests.
  const current = { representation }
  const origin = await startOrigin((request, response) => {
    const { body, etag, lastModified, headers = {}, notModifiedHeaders = {} } = current.representation
    const validators: OutgoingHttpHeaders = {
      ...(etag === undefined ? {} : { etag }),
      ...(lastModified === undefined ? {} : { 'last-modified': lastModified }),
    }
    const ifNoneMatch = request.headers['if-none-match']
    const ifModifiedSince = request.headers['if-modified-since']
    const notModified =
      ifNoneMatch !== undefined
        ? etag !== undefined && ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag.replace(/^W\//, ''))
        : ifModifiedSince !== undefined && lastModified !== undefined && Date.parse(lastModified) <= Date.parse(ifModifiedSince)
    if (notModified) {
      statuses.push(304)
      response.writeHead(304, { ...validators, ...headers, ...notModifiedHeaders })
      response.end()
      return
    }
    statuses.push(200)
    response.writeHead(200, { ...validators, ...headers })
    response.end(body)
  })
  return Object.defineProperties(origin as ValidatingOrigin, {
    representation: { get: () => current.representation, set: (next: Representation) => (current.representation = next) },
    statuses: { value: statuses },
  })
}
