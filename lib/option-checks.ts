/**
 * The checks every options object goes through (the cache's and the stores'), so that each says what was
 * wrong the same way: a `TypeError` naming the option, the expectation and the value received.
 */

/** The options object itself: an object (or nothing), with no name it does not know. */
export function checkOptionsObject(name: string, input: unknown, knownNames: readonly string[]): Record<string, unknown> {
  if (input === undefined) return {}
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError(`${name} must be an object, received ${describe(input)}`)
  }
  for (const optionName of Object.keys(input)) {
    if (!knownNames.includes(optionName)) throw new TypeError(`unknown option "${optionName}"`)
  }
  return input as Record<string, unknown>
}

export function checkPositiveInteger(name: string, value: unknown, unit: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive integer (${unit}), received ${describe(value)}`)
  }
  return value
}

/** A received value as a message shows it: strings quoted, everything else as written. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`
  if (value !== null && typeof value === 'object') {
    const className = value.constructor === Object ? undefined : value.constructor?.name
    return className ? `an instance of ${className}` : 'an object'
  }
  return String(value)
}
