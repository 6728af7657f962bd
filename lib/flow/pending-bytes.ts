/**
 * The bytes that responses on their way to the store hold together. Each response copied for the store is
 * bounded by `maxEntrySize`, but many at once would not be: forty 6 MiB downloads at a time held 240 MiB
 * for a 16 MiB store (each keeps the chunks its caller has read and let go). A response is copied only
 * while the bytes it takes fit in what is left; one that does not fit passes through unstored, as one
 * larger than `maxEntrySize` does. A response that declares its length takes all of it as it starts, so
 * that those admitted finish and the others are not copied at all, rather than all stalling halfway.
 */
export class PendingBytes {
  readonly limit: number
  #held = 0

  constructor(limit: number) {
    this.limit = limit
  }

  /** Takes `bytes` from what is left; `false`, taking nothing, when they do not fit. */
  take(bytes: number): boolean {
    if (this.#held + bytes > this.limit) return false
    this.#held += bytes
    return true
  }

  /** Gives back bytes taken, once their response is in the store (the write done) or given up. */
  give(bytes: number): void {
    this.#held -= bytes
  }

  /** Bytes taken now. */
  get held(): number {
    return this.#held
  }
}
