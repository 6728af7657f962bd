// Why CachingAgent does not pass a cache-tests.fyi test, in our words: one line per test id (or per group
// of ids sharing a reason, matched by a pattern). docs/conformance.md is generated from these and the
// results; a non-passing test without an explanation is reported by `npm run conformance -- --report`.

/** [pattern on the test id, explanation]; the first match wins. */
export const EXPLANATIONS = [
  [/^partial-/, 'Range requests and 206 responses go to the origin untouched; partial content is neither stored nor assembled.'],
  [/^method-POST$/, 'POST responses are not stored (the `methods` option will allow it, issue #5).'],
  [/^cc-resp-immutable-fresh$/, "A request's `max-age=0` (fetch's `cache: 'no-cache'`) is honoured even for `immutable` responses: only a browser's reload may skip it (RFC 8246)."],
  [/^vary-normalise-lang-(order|select)$/, '`Accept-Language` is matched by value (case and whitespace normalised), not by language negotiation.'],
  [/^conditional-lm-fresh-no-lm$/, 'A caller\'s `If-Modified-Since` older than the stored `Date` is sent on to the origin; the stored response is newer, so a 304 would be wrong.'],
  [/^stale-(close|503)$/, 'A stale response stands in for a failing origin only when `stale-if-error` (the directive or the `staleIfError` option) allows it.'],
  [/^stale-close-/, 'Depends on `stale-close`, which this cache answers "no" by design (see above); the behaviour itself is tested with `stale-if-error`.'],
  [/^stale-warning-/, 'The obsolete `Warning` header (RFC 9111 removed it) is not generated.'],
  [/^head-200-(freshness-update|retain)$/, 'A 200 answer to a HEAD passes through and does not update the stored GET response (RFC 9111 §4.3.5 allows but does not require it).'],
  [/^head-(200|410)-update$/, 'Depends on `head-200-freshness-update` (see above).'],
  [/^304-etag-update-response-(Content-Encoding|Content-Range)$/, 'Kept from the stored response on a 304, so that they keep describing the stored body (RFC 9111 §3.2).'],
  [/^304-etag-update-response-ETag$/, 'A 304 whose strong `ETag` differs from the stored one names another response, so it updates and validates nothing: the request is sent again without validators (RFC 9111 §4.3.4), which the suite reads as a retry.'],
  [/^age-parse-(numeric-)?parameter$/, '`Age` with a parameter is not a valid delta-seconds, so it is ignored (RFC 9111 §5.1).'],
  [/^ccreq-no-store$/, 'A request\'s `no-store` keeps its response out of the cache; it does not stop a fresh stored response from being served.'],
  [/^conditional-etag-forward-unquoted$/, "A caller's own conditional request is sent on exactly as made."],
  [/^conditional-etag-strong-generate-unquoted$/, 'Validators are sent as the origin gave them; an unquoted `ETag` is not a valid entity-tag and is not repaired.'],
  [/^conditional-etag-vary-headers-mismatch$/, 'A request for another `Vary` variant is a miss; it is not revalidated with another variant\'s `ETag`.'],
  [/^conditional-etag-(quoted-respond-unquoted|unquoted-respond-(un)?quoted|strong-respond-obs-text|weak-respond-(backslash|lowercase|omit-slash))$/, 'Only well-formed entity-tags are compared when answering a caller\'s `If-None-Match`; otherwise the request goes to the origin.'],
  [/^freshness-max-age-a100$/, 'An invalid `max-age` (leading letters) gives no explicit freshness, so the response is not reused.'],
  [/^freshness-max-age-two-stale-fresh-(same|sep)line$/, 'Of two `max-age` directives the first counts (RFC 9111 §4.2.1), here the one that makes the response stale.'],
  [/^heuristic-delta-(5|10|30)$/, 'Heuristic freshness is 10% of the time since `Last-Modified`, which for a few seconds is under a second.'],
  [/^other-age-delay$/, 'A response passed through from the origin keeps its own `Age` (none here); `Age` is added to responses served from the cache.'],
  [/^pragma-request-no-cache$/, 'Without `Cache-Control`, a request\'s `Pragma: no-cache` means `no-cache` (RFC 9111 §5.4).'],
  [/^pragma-response-no-cache-heuristic$/, 'A response\'s `Pragma: no-cache` is read as `Cache-Control: no-cache` when it has no `Cache-Control` (as http-cache-semantics does).'],
  [/^304-etag-update-response-Set-Cookie2?$/, 'In shared mode `Set-Cookie` is never stored (the deliberate deviation above), so the one a 304 brings is not kept for later hits; the caller whose request got that 304 receives it.'],
  [/^cdn-max-age-case-insensitive$/, 'RFC 9651 Dictionary keys are lower-case; `CDN-Cache-Control: MaX-aGe` is not a valid field and is ignored.'],
]

/** The explanation for a test id, or undefined when none is written yet. */
export function explain(id) {
  return EXPLANATIONS.find(([pattern]) => pattern.test(id))?.[1]
}
