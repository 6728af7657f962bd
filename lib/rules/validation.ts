/**
 * Validators (RFC 9110 §8.8, §13; RFC 9111 §4.3): answering a caller's own conditional request from a
 * stored response, and folding an origin's 304 into the stored response it validated.
 */
import { joinHeader, withoutFields, withoutHopByHop, type HeaderRecord, type RequestHeaders } from './headers.js'
import { parseHttpDate } from './http-date.js'
import { pickHeaders } from './directives.js'
import { evaluateResponse, type PolicyRequest, type StorageRules } from './policy.js'
import { staleIfErrorRetention } from './retention.js'
import type { ResponseEntry } from '../stores/store.js'

/** Whether the caller's request asks to validate what it holds (`If-None-Match` or `If-Modified-Since`). */
export function isValidationRequest(headers: RequestHeaders): boolean {
  return headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined
}

/**
 * RFC 9111 §4.3.2 with RFC 9110 §13.1.2–13.1.3: whether the caller's validators match the stored response,
 * so that a 304 answers it. `If-None-Match` decides when present (weak comparison); otherwise
 * `If-Modified-Since` against the stored `Last-Modified`, or its `Date`, or when it was stored.
 */
export function isNotModified(entry: ResponseEntry, headers: RequestHeaders): boolean {
  const ifNoneMatch = headers['if-none-match']
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true
    const stored = joinHeader(entry.headers.etag)
    if (stored === undefined) return false
    return parseEntityTags(ifNoneMatch).some((tag) => weakMatch(tag, stored))
  }
  const since = parseHttpDate(headers['if-modified-since'])
  if (since === undefined) return false // an invalid date is ignored (RFC 9110 §13.1.3)
  const lastModified = parseHttpDate(joinHeader(entry.headers['last-modified'])) ?? parseHttpDate(joinHeader(entry.headers.date))
  return (lastModified ?? entry.createdAt) <= since
}

/** The entity-tags of an `If-None-Match` list, kept whole (`W/"x"`); commas inside quotes stay inside. */
function parseEntityTags(value: string): string[] {
  return value.match(/(?:W\/)?"[^"]*"/g) ?? []
}

/** RFC 9110 §8.8.3.2: weak comparison ignores the `W/` prefix of either tag. */
function weakMatch(a: string, b: string): boolean {
  return opaqueTag(a) === opaqueTag(b)
}

function opaqueTag(tag: string): string {
  return tag.trim().replace(/^W\//, '')
}

// RFC 9111 §3.2: a 304 updates the stored fields, except those that describe the stored body's framing and
// coding, which must keep matching the body that is kept.
const KEPT_FROM_STORED = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'content-range'])

/** What a 304 makes of the stored response it answers. */
export type NotModifiedResult =
  /** The 304 does not identify the stored response (§4.3.4): the entry must not be updated from it. */
  | { selected: false }
  /** The updated response; `storable` is false when the 304's fields forbid storing it any longer. */
  | { selected: true; entry: ResponseEntry; storable: boolean }

/**
 * Folds a 304 into the entry it validated: the 304's fields replace the stored ones (§3.2) and freshness
 * starts again from the 304 (§4.3.4), so the next request is a hit. http-cache-semantics' own merge keeps
 * only the fields the stored response already had; RFC 9111 adds the new ones too, so this merges itself
 * and lets http-cache-semantics judge the merged response.
 */
export function applyNotModified(
  entry: ResponseEntry,
  request: PolicyRequest,
  notModifiedHeaders: HeaderRecord,
  options: { shared: boolean; now: number; requestTime: number; rules: StorageRules },
): NotModifiedResult {
  if (!identifiesStored(entry.headers, notModifiedHeaders)) return { selected: false }
  const headers: HeaderRecord = { ...entry.headers }
  // The response is as old as the 304 says (§4.2.3 reads Age and Date of the response just received): an
  // Age the stored response brought from an upstream cache no longer applies, and a 304 without Date gets
  // the time it arrived (RFC 9110 §6.6.1), not the stored response's older one.
  delete headers.age
  headers.date = new Date(options.now).toUTCString()
  for (const [name, value] of Object.entries(withoutHopByHop(notModifiedHeaders))) {
    if (!KEPT_FROM_STORED.has(name)) headers[name] = value
  }
  const updated: ResponseEntry = { ...entry, headers, createdAt: options.now }
  const storable = evaluateResponse(request, { status: entry.status, headers }, options)
  if (storable === undefined) return { selected: true, entry: updated, storable: false }
  updated.headers = withoutFields(headers, storable.omittedFields)
  updated.initialAgeSeconds = storable.initialAgeSeconds
  updated.lifetimeSeconds = storable.lifetimeSeconds
  // The option as it is now: one turned off since the entry was stored no longer keeps it.
  const { staleIfErrorSeconds } = staleIfErrorRetention(options.rules.staleIfError)
  if (staleIfErrorSeconds === undefined) delete updated.staleIfErrorSeconds
  else updated.staleIfErrorSeconds = staleIfErrorSeconds
  updated.policy = storable.policy
  // A 304 may change Vary (it carries the Vary a 200 would): the entry is then selected by the new names,
  // with the values of the request it was just validated for (RFC 9111 §4.1).
  if (storable.varyNames.join() !== Object.keys(entry.varyHeaders ?? {}).join()) {
    if (storable.varyNames.length > 0) updated.varyHeaders = pickHeaders(request.headers, storable.varyNames)
    else delete updated.varyHeaders
  }
  return { selected: true, entry: updated, storable: true }
}

/** Whether a response carries a validator (`ETag` or `Last-Modified`) by which it names a stored response. */
export function namesValidator(headers: HeaderRecord): boolean {
  return headers.etag !== undefined || headers['last-modified'] !== undefined
}

/**
 * RFC 9111 §4.3.4: a 304 with a strong `ETag` updates only the stored response with that tag; one with a
 * weak `ETag` or a `Last-Modified` only a stored response with that validator. A 304 that carries no
 * validator at all is taken to answer the request the cache made from this entry's validators (many
 * origins send such 304s; the RFC's rule for them assumes a cache that did not send the validators itself).
 */
function identifiesStored(stored: HeaderRecord, notModified: HeaderRecord): boolean {
  const newTag = joinHeader(notModified.etag)
  const storedTag = joinHeader(stored.etag)
  if (newTag !== undefined) {
    if (storedTag === undefined) return false
    return newTag.trim().startsWith('W/') ? weakMatch(newTag, storedTag) : newTag.trim() === storedTag.trim()
  }
  const newLastModified = joinHeader(notModified['last-modified'])
  if (newLastModified !== undefined) return newLastModified === joinHeader(stored['last-modified'])
  return true
}
