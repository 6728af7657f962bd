/**
 * Credentials in requests (issue #16): a redacted parameter's value is replaced, wherever the cache keeps or
 * shows it, by a digest of it. The digest still tells requests apart (it takes part in the key and in `Vary`
 * selection), so two users' credentials never share an entry, while the value itself never reaches a store,
 * `entries()`, `urls()`, `Cache-Status` or a log. An ignored parameter is the user's choice to leave a name
 * out of matching: it is removed from URLs and bodies, and redacted like the others where it stays (headers).
 */
import { hash } from 'node:crypto'
import type { RequestHeaders } from '../rules/headers.js'

/**
 * Credentials named by `redactedParameters`, as they are by default (issue #16: common credentials, which
 * tell users apart): HTTP's own, and the headers and parameters common APIs take keys in (GitLab's
 * `Private-Token` and `Job-Token`, Google's `X-Goog-Api-Key`, Azure API Management's
 * `Ocp-Apim-Subscription-Key`, Vault's `X-Vault-Token`, AWS's signed-URL parameters...). A header not
 * listed is not part of the key: `matchHeaders`, or the origin's `Vary`, makes it one.
 */
export const DEFAULT_REDACTED_PARAMETERS: readonly string[] = Object.freeze([
  'Authorization',
  'Proxy-Authorization',
  'Cookie',
  'X-API-Key',
  'Api-Key',
  'X-Auth-Token',
  'X-Access-Token',
  'X-Session-Token',
  'Private-Token',
  'Job-Token',
  'X-Goog-Api-Key',
  'Ocp-Apim-Subscription-Key',
  'X-Vault-Token',
  'X-Amz-Security-Token',
  'X-Amz-Credential',
  'X-Amz-Signature',
  'access_token',
  'refresh_token',
  'id_token',
  'client_secret',
  'api_key',
  'apikey',
  'password',
])

/** What the cache does with named query parameters, JSON and form body members and request headers. */
export interface ParameterRules {
  /** Lower-case names left out of keys (`ignoredParameters`). */
  ignored: ReadonlySet<string>
  /** Lower-case names whose values are kept as digests (`redactedParameters`), ignored ones aside. */
  redacted: ReadonlySet<string>
  /**
   * Request headers whose digests are part of the key: the redacted ones, but not `Authorization` in a
   * shared cache, where RFC 9111 §3.5 decides (a response to it is stored only when the origin marks it
   * `public`, `s-maxage` or `must-revalidate`, and is then for everyone).
   */
  credentialHeaders: ReadonlySet<string>
  /** Writes a redacted value: see `redactionOf` and `forStoredData`. */
  redact: (value: string) => string
}

/** Lower-case names, for case-insensitive comparison. */
function lowerCaseNames(names: readonly string[] | undefined): ReadonlySet<string> {
  return new Set((names ?? []).map((name) => name.toLowerCase()))
}

/**
 * Credentials by HTTP's definition (RFC 9110 §11.6, RFC 6265): redacted and keyed whatever
 * `redactedParameters` says, unless `ignoredParameters` names them, so that a list that replaces the
 * default (`['X-Session']`) never merges users' `Authorization` (issue #16 review).
 */
const HTTP_CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie']

/** The rules for requests as they are made: every redacted value is written as its digest. */
export function parameterRules(options: { ignored: readonly string[]; redacted: readonly string[]; shared: boolean }): ParameterRules {
  const ignored = lowerCaseNames(options.ignored)
  const named = [...lowerCaseNames(options.redacted), ...HTTP_CREDENTIAL_HEADERS]
  const redacted = new Set(named.filter((name) => !ignored.has(name)))
  const credentialHeaders = new Set([...redacted].filter((name) => !(options.shared && name === 'authorization')))
  return { ignored, redacted, credentialHeaders, redact: redactionOf }
}

/**
 * The rules for data read back from a store (`recreateKeys()`, `delete(url)`), where a redacted value is
 * a digest already and is kept as it is, so that an entry is keyed again as its request was. Never for a
 * request as it is made: a caller who sent a digest as a credential would otherwise be keyed as its owner.
 */
export function forStoredData(rules: ParameterRules): ParameterRules {
  return { ...rules, redact: (value) => (isRedaction(value) ? value : redactionOf(value)) }
}

const PREFIX = 'redacted:'
const REDACTION = /^redacted:[A-Za-z0-9_-]{43}$/

/**
 * A value as the cache keeps it: `redacted:` and the base64url SHA-256 of the value, safe in a URL query,
 * a header and JSON. It is not a secret: whoever can read the store can test a guessed credential against
 * it (as against the key, which digests it too), so a low-entropy secret is only as safe as the store.
 */
export function redactionOf(value: string): string {
  return PREFIX + hash('sha256', value, 'base64url')
}

function isRedaction(value: string): boolean {
  return REDACTION.test(value)
}

/**
 * The request headers as the cache keeps them and selects `Vary` variants by: each ignored or redacted
 * header's value written as its digest (an ignored one too, so that a response that varies on it is still
 * matched, RFC 9111 §4.1, by its digest). The same object when no value changes.
 */
export function redactHeaders(headers: RequestHeaders, rules: ParameterRules): RequestHeaders {
  let redacted: RequestHeaders | undefined
  for (const name in headers) {
    if (!rules.redacted.has(name) && !rules.ignored.has(name)) continue
    const value = rules.redact(headers[name]!)
    if (value === headers[name]) continue // a digest read back from a store
    redacted ??= { ...headers }
    redacted[name] = value
  }
  return redacted ?? headers
}

/** Whether a request carries a header whose digest is part of its key (a credential). */
export function hasCredentialHeader(headers: RequestHeaders, rules: ParameterRules): boolean {
  for (const name in headers) if (rules.credentialHeaders.has(name)) return true
  return false
}
