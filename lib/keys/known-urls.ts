import { plainGetKey, type UrlMemo } from './key.js'
import type { ParameterRules } from './redaction.js'
import { absoluteUrl, normalizeRequestUrl, originOf } from './urls.js'

/**
 * What the cache works out from a URL, remembered: a request's absolute URL from undici's `origin` and
 * `path`, and for that URL its normalised form and the default key of a GET (or HEAD) of it. Working them
 * out costs three URL parses, a sort of the query and a SHA-256: without this, most of the cache's own work
 * on a hit. All are pure functions of their inputs and of the cache's fixed parameter rules. At most
 * `limit` of each are kept, all forgotten at once when that is reached (a working set of hot URLs is soon
 * remembered again), and URLs longer than `MAX_REMEMBERED_LENGTH` are not kept: so this holds at most a
 * few MiB whatever the traffic, and typically a few hundred KiB.
 */
export class KnownUrls implements UrlMemo {
  readonly #rules: ParameterRules
  readonly #limit: number
  readonly #absolute = new Map<string, string>()
  /** Each origin seen, what it serialises to, and the identities remembered of URLs on it by path. */
  readonly #origins = new Map<string, KnownOrigin>()
  /** Identities of URLs `absolute` did not join from a known origin and a plain path, by URL. */
  readonly #identities = new Map<string, UrlIdentity>()
  /** The origin `#knownOrigin` last answered for, and its answer. */
  #recentOrigin: string | undefined
  #recentKnown: KnownOrigin | undefined
  /** How many identities are remembered, in `#identities` and in the origins' maps together. */
  #identityCount = 0
  /**
   * The URL `absolute` last joined from an origin and a plain path, with those and the identity kept for
   * the path, if any: `identity` of that URL finds it by path on its origin, not by the URL, a string made
   * afresh for each request and so flattened and hashed again each time (most of a hit's lookup, issue #17).
   */
  #joinedUrl: string | undefined
  #joinedPath = ''
  #joinedOrigin: KnownOrigin | undefined
  #joinedIdentity: UrlIdentity | undefined
  /** The identity `identity` last worked out, its URL, and its origin and path when joined, until `keep`. */
  #lastUrl: string | undefined
  #lastIdentity: UrlIdentity | undefined
  #lastOrigin: KnownOrigin | undefined
  #lastPath = ''

  constructor(rules: ParameterRules, limit = 1000) {
    this.#rules = rules
    this.#limit = limit
  }

  /** The URL of request-target `path` on `origin` (see `absoluteUrl`); `undefined` when it is not keyed. */
  absolute(origin: string, path: string): string | undefined {
    const known = this.#knownOrigin(origin)
    // A path kept (`keep`) was joined as below: its identity is at hand, and it needs no test again.
    const identity = known.identities.get(path)
    // Most requests need no parsing: an origin in its serialised form and a path the URL parser keeps as it
    // is (no `#` among its characters either).
    if (identity !== undefined || (known.serialised !== '' && PLAIN_PATH.test(path) && !MAY_HOLD_DOT_SEGMENT.test(path))) {
      const url = known.serialised + path
      this.#joinedUrl = url
      this.#joinedPath = path
      this.#joinedOrigin = known
      this.#joinedIdentity = identity
      return url
    }
    // undici sends a fragment too (a URL it was given has none: it is dropped as the URL is read), which
    // would name another target than the URL without it.
    if (path.includes('#')) return undefined
    // The origin's length first, so that no two (origin, path) pairs share a memo key.
    const memoKey = `${origin.length} ${origin}${path}`
    let url = this.#absolute.get(memoKey)
    if (url === undefined) {
      url = absoluteUrl(origin, path)
      if (url !== undefined) remember(this.#absolute, memoKey, url, this.#limit)
    }
    return url
  }

  /** What is known of `origin`: the http(s) origin it serialises to when it is written exactly so ('' if not). */
  #knownOrigin(origin: string): KnownOrigin {
    // Most programs send to one origin, named by a string made afresh per request: compared, not hashed.
    if (origin === this.#recentOrigin && this.#recentKnown?.isHeld) return this.#recentKnown
    let known = this.#origins.get(origin)
    if (known === undefined) {
      let serialised = originOf(origin)
      const isExact = (serialised === origin || `${serialised}/` === origin) && /^https?:/.test(serialised)
      if (!isExact) serialised = ''
      known = { serialised, identities: new Map(), isHeld: origin.length <= MAX_REMEMBERED_LENGTH }
      if (this.#origins.size >= this.#limit) this.#forgetOrigins()
      if (known.isHeld) this.#origins.set(origin, known)
    }
    this.#recentOrigin = origin
    this.#recentKnown = known
    return known
  }

  /**
   * The URL as entries hold it (`storedUrl`) and the default key of a GET or HEAD of it. One worked out
   * afresh is not remembered yet (see `keep`).
   */
  identity(url: string): UrlIdentity {
    let origin: KnownOrigin | undefined
    let path = ''
    if (url === this.#joinedUrl) {
      // `absolute` looked it up already.
      if (this.#joinedIdentity !== undefined) return this.#joinedIdentity
      origin = this.#joinedOrigin
      path = this.#joinedPath
    } else {
      const known = this.#identities.get(url)
      if (known !== undefined) return known
    }
    const storedUrl = normalizeRequestUrl(url, this.#rules)
    const identity = { storedUrl, getKey: plainGetKey(storedUrl, this.#rules) }
    this.#lastUrl = url
    this.#lastIdentity = identity
    this.#lastOrigin = origin
    this.#lastPath = path
    return identity
  }

  /**
   * Remembers the identity of `url` if it was the last worked out: called when a request for it found a
   * response stored, so that its next requests, likely hits, find it. A URL is not remembered before:
   * most URLs that nothing is stored for are misses never asked for again (a new id per request, a
   * `no-store` answer), and remembering each would cost every such miss more than working it out does
   * (what the memo holds outlives young objects, and the collector copies it on; measured in issue #17).
   */
  keep(url: string): void {
    const identity = this.#lastIdentity
    if (this.#lastUrl !== url || identity === undefined || url.length > MAX_REMEMBERED_LENGTH) return
    if (this.#identityCount >= this.#limit) this.#forgetIdentities()
    // An origin not held (too long a string, or forgotten since) is not written to: #forgetIdentities would miss it.
    const origin = this.#lastOrigin
    if (origin?.isHeld) origin.identities.set(this.#lastPath, identity)
    else this.#identities.set(url, identity)
    this.#identityCount++
    this.#lastUrl = undefined
    this.#lastIdentity = undefined
    this.#lastOrigin = undefined
  }

  #forgetIdentities(): void {
    this.#identities.clear()
    for (const origin of this.#origins.values()) origin.identities.clear()
    this.#identityCount = 0
  }

  #forgetOrigins(): void {
    this.#forgetIdentities()
    for (const origin of this.#origins.values()) origin.isHeld = false
    this.#origins.clear()
  }
}

/** An origin as undici's `origin` option gives it: its serialised form, if written so, and its URLs' identities by path. */
interface KnownOrigin {
  serialised: string
  identities: Map<string, UrlIdentity>
  /** Whether `#origins` holds it, so that forgetting the identities reaches those it holds. */
  isHeld: boolean
}

/** A URL as entries hold it, and the default key of a GET or HEAD of it. */
interface UrlIdentity {
  storedUrl: string
  getKey: string
}

const MAX_REMEMBERED_LENGTH = 1000

/**
 * A path (with its query) that the URL parser keeps exactly as written for an http(s) URL: only characters
 * it never percent-encodes there (so no space, quote, `'`, `<`, backslash, non-ASCII...), not `//` first
 * (that would name a host). `%` sequences are never decoded by the parser, so they stay as they are.
 */
const PLAIN_PATH = /^\/(?!\/)[\w\-.~!$&()*+,;=:@/?%]*$/
/** Dot segments (`/./`, `/../`, also spelt `%2e`) are resolved by the parser: such paths are parsed. */
const MAY_HOLD_DOT_SEGMENT = /\/\.|%2e/i

function remember<T>(memo: Map<string, T>, key: string, value: T, limit: number): void {
  if (key.length > MAX_REMEMBERED_LENGTH) return
  if (memo.size >= limit) memo.clear()
  memo.set(key, value)
}
