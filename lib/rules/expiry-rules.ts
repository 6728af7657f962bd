/**
 * Freshness the user configures (requests-cache's `expire_after` and `urls_expire_after`): how long a
 * response that carries no explicit freshness of its own stays fresh, per URL. Server headers win: these
 * rules replace only RFC 9111's heuristic freshness (§4.2.2).
 */
import picomatch from 'picomatch'

/** Seconds of freshness, fresh for good (`'never'` expires), or never stored (`'no-store'`). */
export type ConfiguredTtl = number | 'never' | 'no-store'

/** One `urlsExpireAfter` rule: a glob on host and path, or a RegExp on the whole URL, and its ttl. */
export type UrlExpiryRule = readonly [pattern: string | RegExp, ttl: ConfiguredTtl]

/** Fresh for good, in seconds: about a hundred years, finite so that stores that serialise entries keep it. */
export const NEVER_EXPIRES_SECONDS = 100 * 365 * 24 * 60 * 60

/** The configured ttl of a URL, if any rule or `defaultTtl` gives one. */
export type ExpiryRules = (url: string) => ConfiguredTtl | undefined

/**
 * Compiles the rules once. A glob is matched against the URL's host and path (`api.example.com/static/x.js`)
 * and against its host name and path without the port, so that a pattern need not name a port; the query
 * takes no part. A RegExp is tested on the whole URL as stored (normalised, ignored parameters removed).
 * The first matching rule wins; `defaultTtl` applies to URLs no rule matches.
 */
export function compileExpiryRules(rules: readonly UrlExpiryRule[], defaultTtl: number | undefined): ExpiryRules | undefined {
  if (rules.length === 0 && defaultTtl === undefined) return undefined
  const matchers = rules.map(([pattern, ttl]) => ({ matches: compilePattern(pattern), ttl }))
  return (url) => {
    for (const { matches, ttl } of matchers) if (matches(url)) return ttl
    return defaultTtl
  }
}

function compilePattern(pattern: string | RegExp): (url: string) => boolean {
  if (pattern instanceof RegExp) {
    const regExp = statelessRegExp(pattern)
    return (url) => regExp.test(url)
  }
  // A pattern naming only a host ('api.example.com', as in requests-cache) covers every path on it. Path
  // segments starting with a dot (`/.well-known/`) are paths like any other: a host's 'no-store' covers them.
  const glob = picomatch(pattern.includes('/') ? pattern : `${pattern}/**`, { dot: true })
  return (url) => {
    const { host, hostname, pathname } = new URL(url)
    return glob(`${host}${pathname}`) || (host !== hostname && glob(`${hostname}${pathname}`))
  }
}

/**
 * The RegExp without its `g` and `y` flags: with them, `test()` resumes from `lastIndex`, so that the same
 * URL would match one time and not the next.
 */
export function statelessRegExp(pattern: RegExp): RegExp {
  return /[gy]/.test(pattern.flags) ? new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')) : pattern
}

/** The freshness lifetime in seconds a configured ttl gives (`'no-store'` never reaches here). */
export function lifetimeOf(ttl: number | 'never'): number {
  return ttl === 'never' ? NEVER_EXPIRES_SECONDS : ttl
}
