// The floor: a dispatcher that replays fixed bytes from memory with no cache logic at all, in 64 KiB
// chunks, honouring pause and resume as undici's clients expect. A cache hit can cost no less than this;
// the hit-and-miss bench reports how close CachingAgent comes. Responses start as CachingAgent's replays
// do (lib/replay-scheduling.ts): on a microtask, but at most 64 in one turn of the event loop, so that a
// loop of requests lets the event loop turn and its deferred work does not pile up.
import { Dispatcher } from 'undici'

const CHUNK_BYTES = 64 * 1024

export class FloorDispatcher extends Dispatcher {
  #response

  /** `body`: the bytes every request gets, with `headers` (a plain record). */
  constructor({ body, headers }) {
    super()
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
    startSoon(() => {
      handler.onRequestStart?.(controller, {})
      handler.onResponseStart?.(controller, 200, headers, 'OK')
      write()
    })
    return true
  }

  async close() {}
  async destroy() {}
}

const STARTS_PER_TURN = 64
let startsThisTurn = 0
let turnPending = false

function startSoon(start) {
  if (!turnPending) {
    turnPending = true
    setImmediate(() => {
      turnPending = false
      startsThisTurn = 0
    })
  }
  if (startsThisTurn++ < STARTS_PER_TURN) queueMicrotask(start)
  else setImmediate(start)
}
