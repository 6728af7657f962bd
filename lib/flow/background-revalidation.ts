import { debuglog } from 'node:util'
import type { Dispatcher } from 'undici'
import type { StatsCounters } from '../stats.js'

const log = debuglog('undici-http-cache')

/** Background revalidations running at once, at most; past it a stale entry is served without starting another. */
const DEFAULT_MAX_IN_FLIGHT = 64

/**
 * The revalidations `stale-while-revalidate` starts behind a stale response (RFC 5861 §3): at most one per
 * key at a time, at most `maxInFlight` in all, each forgotten as soon as it ends. Nobody waits for them,
 * so a failure is counted and logged, never thrown.
 */
export class BackgroundRevalidations {
  readonly #inFlight = new Set<string>()
  readonly #maxInFlight: number
  /** Counts revalidations that failed (no response, or a server error) in `errors`. */
  readonly #stats: StatsCounters

  constructor(stats: StatsCounters, maxInFlight = DEFAULT_MAX_IN_FLIGHT) {
    this.#stats = stats
    this.#maxInFlight = maxInFlight
  }

  /** How many are running now. */
  get size(): number {
    return this.#inFlight.size
  }

  /**
   * Starts one for `key` unless one is running for it already or too many are: `send` dispatches the
   * revalidation with the handler it is given, which receives the whole response and discards it.
   */
  start(key: string, send: (handler: Dispatcher.DispatchHandler) => void): void {
    if (this.#inFlight.has(key) || this.#inFlight.size >= this.#maxInFlight) return
    this.#inFlight.add(key)
    let status = 0
    const finish = (error?: Error): void => {
      if (!this.#inFlight.delete(key)) return
      if (error === undefined && status < 500) return
      this.#stats.errors++
      log('background revalidation failed: %s', error ?? `status ${status}`)
    }
    const discard: Dispatcher.DispatchHandler = {
      onResponseStart: (_controller, statusCode) => {
        if (statusCode >= 200) status = statusCode
      },
      onResponseEnd: () => finish(),
      onResponseError: (_controller, error) => finish(error),
    }
    try {
      send(discard)
    } catch (error) {
      finish(error instanceof Error ? error : new Error(String(error)))
    }
  }
}
