/**
 * The user's `filter`: whether a response may be stored, asked of each new response once its body is
 * whole, and of each stored response before it is served (requests-cache's `filter_fn`).
 */
import { withJoinedBody, type ResponseBody } from '../stores/body.js'
import type { GuardedStore } from '../stores/guarded-store.js'
import { copyHeaders, type HeaderRecord } from '../rules/headers.js'
import { summarizeRequest, type RequestSummary } from '../diagnostics.js'
import type { CacheRequest, KeyedRequest } from './key.js'

/** The response a filter is shown: whole, body included (still content-coded). */
export interface FilterResponse {
  /** The status code. */
  status: number
  /** The reason phrase ('' when there was none). */
  statusText: string
  /** The response's fields, lower-case names. */
  headers: HeaderRecord
  /** The whole body, still content-coded: the stored bytes themselves, to be read, not written. */
  body: Uint8Array
}

/**
 * The `filter` option: whether `response` may be stored for `request`, or, stored already, be served to it.
 * `false`, or a throw, means "do not cache" (a throw is counted in `stats.errors`).
 */
export type ResponseFilter = (request: CacheRequest, response: FilterResponse) => boolean

/**
 * Whether the filter lets the response be stored or served; true when there is no filter. Only `true`
 * allows. A filter that throws, or returns something other than a boolean (a Promise: filters are
 * synchronous), counts as "do not cache" and as an error in `stats.errors`.
 */
export function filterAllows(
  filter: ResponseFilter | undefined,
  request: CacheRequest,
  response: Omit<FilterResponse, 'body'> & { body: ResponseBody },
  store: GuardedStore,
): boolean {
  if (filter === undefined) return true
  let verdict: unknown
  try {
    const { status, statusText, headers, body } = response
    // The fields as a copy (a filter may redact them to log them); the body as stored, read and not written
    // to, as handlers treat the chunks they are given: a copy on every hit would cost as much as the hit.
    verdict = filter(request, withJoinedBody({ status, statusText, headers: copyHeaders(headers) }, body))
  } catch (error) {
    store.recordFailure('filter', error, () => summaryOf(request))
    return false
  }
  if (typeof verdict !== 'boolean') store.recordFailure('filter', new TypeError(`options.filter must return a boolean, returned ${typeof verdict}`), () => summaryOf(request))
  return verdict === true
}

/** The request as an error message names it: as stored (credentials as digests), when it was keyed. */
function summaryOf(request: CacheRequest): RequestSummary | undefined {
  if (!('storedUrl' in request)) return undefined
  const { method, storedUrl, storedHeaders } = request as KeyedRequest
  return summarizeRequest(method, storedUrl, storedHeaders)
}
