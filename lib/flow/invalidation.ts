/**
 * RFC 9111 §4.4: a successful response to an unsafe request means what is stored for its target may have
 * changed, so the cache forgets it, and the same for the `Location` and `Content-Location` targets on the
 * same origin (another origin could otherwise make a cache forget what it does not control).
 */
import type { GuardedStore } from '../stores/guarded-store.js'
import { joinHeader, type HeaderRecord } from '../rules/headers.js'
import { forget } from '../keys/variants.js'

// RFC 9110 §9.2.1: the methods defined as safe; every other method may change the target.
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

export function isUnsafeMethod(method: string): boolean {
  return !SAFE_METHODS.has(method)
}

/**
 * Deletes what is stored for the request's URL (every `Vary` variant too), and for the response's
 * `Location` and `Content-Location` when they are on the same origin, if `status` is a non-error status
 * (2xx, 3xx). `keysOfTarget` gives the keys a GET of a URL has: with `matchHeaders`, credentials or a
 * custom key function that reads headers, those for the unsafe request's own headers.
 */
export function invalidateAfterUnsafeRequest(
  store: GuardedStore,
  response: { url: string; status: number; headers: HeaderRecord; keysOfTarget: (url: string) => readonly string[] },
): void {
  const { url, status, headers } = response
  if (status < 200 || status >= 400) return
  const targets = new Set([url])
  for (const name of ['location', 'content-location']) {
    const target = sameOriginTarget(joinHeader(headers[name]), url)
    if (target !== undefined) targets.add(target)
  }
  for (const target of targets) {
    let keys
    try {
      keys = response.keysOfTarget(target)
    } catch (error) {
      store.recordFailure('key', error) // a custom key function that fails leaves the entry in place
      continue
    }
    for (const key of keys) void forget(store, key)
  }
}

/** `reference` resolved against `base`, normalised as request URLs are, if it is on `base`'s origin. */
function sameOriginTarget(reference: string | undefined, base: string): string | undefined {
  if (reference === undefined) return undefined
  let target: URL
  try {
    target = new URL(reference, base)
  } catch {
    return undefined // an unparsable Location names nothing to invalidate
  }
  if (target.origin !== new URL(base).origin) return undefined
  target.hash = ''
  return target.href
}
