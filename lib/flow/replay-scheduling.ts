/**
 * When a response from the store starts. A hit needs no I/O, so it can start on a microtask, right after
 * `dispatch()` returns. But a loop of hits served only on microtasks never lets the event loop turn:
 * timers and sockets starve, and what undici defers to the next turn (each response's body stream
 * teardown, on setImmediate) piles up, so memory grows for as long as the loop runs. So at most
 * `HITS_PER_TURN` responses start on microtasks in one turn of the event loop; the rest wait for the next.
 */
const HITS_PER_TURN = 64

/**
 * Taken when this module loads: test suites replace the global one with fake timers (vitest's defaults do),
 * and a hit must not wait for a test to move its fake clock.
 */
const nextTurn = globalThis.setImmediate

let startedThisTurn = 0
let turnWatched = false

export function scheduleReplay(start: () => void): void {
  if (!turnWatched) {
    turnWatched = true
    nextTurn(countNewTurn)
  }
  if (startedThisTurn++ < HITS_PER_TURN) queueMicrotask(start)
  else nextTurn(start)
}

function countNewTurn(): void {
  turnWatched = false
  startedThisTurn = 0
}
