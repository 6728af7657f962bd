// The floor: a dispatcher that replays fixed bytes from memory with no cache logic at all, in 64 KiB
// chunks, honouring pause and resume as undici's clients expect. A cache hit can cost no less than this;
// the hit-and-miss bench reports how close CachingAgent comes. Responses start on a plain microtask, with
// no scheduling of the project's own: a floor that copied CachingAgent's (lib/flow/replay-scheduling.ts, at most
// 64 starts per turn) would measure that scheduling, not the floor (issue #17). The bench's loops let the
// event loop turn every 16 requests and at least every 10 ms, for every contender alike: with 1 MiB bodies
// and 64 in flight, 16 requests a loop let this floor run whole rounds in one turn (harness.mjs).
import { Dispatcher } from 'undici'

const CHUNK_BYTES = 64 * 1024

export class FloorDispatcher extends Dispatcher {
  #response

  #answer

  /**
   * `body`: the bytes every request gets, with `headers` (a plain record). `answer`: `'on a microtask'` (as
   * a client would, never inside dispatch()), or `'at once'`, inside dispatch(), for the dispatch-level bench.
   */
  constructor({ body, headers, answer = 'on a microtask' }) {
    super()
    this.#answer = answer
    const allHeaders = { ...headers, 'content-length': String(body.byteLength) }
    const rawHeaders = Object.entries(allHeaders).flatMap(([name, value]) => [Buffer.from(name), Buffer.from(value)])
    this.#response = { body, headers: allHeaders, rawHeaders }
  }

  dispatch(_options, handler) {
    const { body, headers, rawHeaders } = this.#response
    let offset = 0
    let paused = false
    let aborted = false
    let ended = false
    const controller = {
      get paused() {
        return paused
      },
      get aborted() {
        return aborted
      },
      reason: null,
      rawHeaders,
      rawTrailers: [],
      pause: () => (paused = true),
      resume: () => {
        paused = false
        queueMicrotask(write)
      },
      abort: () => (aborted = true),
    }
    const write = () => {
      while (!paused && !aborted && offset < body.byteLength) {
        handler.onResponseData?.(controller, body.subarray(offset, (offset += CHUNK_BYTES)))
      }
      if (!paused && !aborted && !ended && offset >= body.byteLength) {
        ended = true
        handler.onResponseEnd?.(controller, {})
      }
    }
    const start = () => {
      handler.onRequestStart?.(controller, {})
      handler.onResponseStart?.(controller, 200, headers, 'OK')
      write()
    }
    if (this.#answer === 'at once') start()
    else queueMicrotask(start)
    return true
  }

  async close() {}
  async destroy() {}
}
