import { Agent, fetch, request, type Dispatcher } from 'undici'
import { describe, expect, it, onTestFinished } from 'vitest'
import { cacheInterceptor, MemoryStore } from '../lib/index.js'
import { createTestAgent, useFakeDate } from './helpers/agent.js'
import { statusOf } from './helpers/cache-status.js'
import { startOrigin, type Origin } from './helpers/origin.js'
import { fetchText as get } from './helpers/request.js'

// Issue #16 part 6: requests waiting on a coalesced request to a stalled origin must not wait longer than they
// would have without the cache. Every timeout here is 500 ms; the waiters used to fail after two (their wait,
// then a request of their own each), so the origin saw one request per caller: what reached the origin is
// asserted, never a time (a waiter at its own shorter timeout: that it failed while the shared request went on).
const TIMEOUT_MS = 500
const CALLERS = 5
/** A timeout a caller gives itself, far longer than `TIMEOUT_MS` (undici fires a 500 ms one within 1 s). */
const LONGER_TIMEOUT_MS = 8_000

/** Where the origin stalls: before the response head, or after the head and part of a body it never finishes. */
type Stall = 'before-headers' | 'mid-body'

/**
 * An origin that stalls every request; `answersAfterMs` makes the ones after the first answer "late" after
 * that long instead. Connections are closed when the test ends.
 */
async function startStallingOrigin(stall: Stall, options: { answersAfterMs?: number } = {}): Promise<Origin> {
  let count = 0
  return startOrigin((_incoming, response) => {
    if (++count > 1 && options.answersAfterMs !== undefined) {
      return void setTimeout(() => response.writeHead(200, { 'cache-control': 'max-age=60' }).end('late'), options.answersAfterMs)
    }
    if (stall === 'before-headers') return
    response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '100' })
    response.write('part of the body')
  })
}

/** One caller through request(), body read: the error code it ends with ('none' when it succeeds). */
async function requestOutcome(
  url: string,
  options: { dispatcher: Dispatcher; headersTimeout?: number; bodyTimeout?: number; headers?: Record<string, string> },
): Promise<Outcome> {
  try {
    const response = await request(url, options)
    await response.body.text()
    return { code: 'none' }
  } catch (error) {
    return { code: (error as { code?: string }).code }
  }
}

/** The same through fetch(), which reports undici's error as the `cause` of its TypeError. */
async function fetchOutcome(url: string, dispatcher: Dispatcher): Promise<Outcome> {
  try {
    await (await fetch(url, { dispatcher })).text()
    return { code: 'none' }
  } catch (error) {
    return { code: ((error as Error).cause as { code?: string } | undefined)?.code }
  }
}

interface Outcome {
  code: string | undefined
}

const EXPECTED_CODE: Record<Stall, string> = { 'before-headers': 'UND_ERR_HEADERS_TIMEOUT', 'mid-body': 'UND_ERR_BODY_TIMEOUT' }

const AGENT_TIMEOUTS = { headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS }

/** The cache as an interceptor on an `Agent` with `agentOptions`: timeouts the cache cannot know. */
function composeOnAgent(agentOptions: Agent.Options): Dispatcher {
  const agent = new Agent(agentOptions)
  onTestFinished(() => agent.destroy())
  return agent.compose(cacheInterceptor({ store: new MemoryStore() }))
}

/** `CALLERS` identical requests at once: every caller's outcome. */
function sendAll(send: () => Promise<Outcome>): Promise<Outcome[]> {
  return Promise.all(Array.from({ length: CALLERS }, send))
}

function expectAllTimedOut(outcomes: Outcome[], stall: Stall, origin: Origin): void {
  expect(outcomes.map((outcome) => outcome.code)).toEqual(Array.from({ length: CALLERS }, () => EXPECTED_CODE[stall]))
  expect(origin.requests).toBe(1)
}

describe('coalescing when the origin stalls (issue #16)', () => {
  for (const stall of ['before-headers', 'mid-body'] as const) {
    it(`fails every request() caller with its timeout when the origin stalls ${stall}, asking once`, async () => {
      const origin = await startStallingOrigin(stall)
      const agent = createTestAgent({ agentOptions: AGENT_TIMEOUTS })
      expectAllTimedOut(await sendAll(() => requestOutcome(origin.url, { dispatcher: agent })), stall, origin)
    })

    it(`fails every fetch() caller with its timeout when the origin stalls ${stall}, asking once`, async () => {
      const origin = await startStallingOrigin(stall)
      const agent = createTestAgent({ agentOptions: AGENT_TIMEOUTS })
      expectAllTimedOut(await sendAll(() => fetchOutcome(origin.url, agent)), stall, origin)
    })

    it(`hands the waiters the shared request's timeout when the origin stalls ${stall}, whatever the dispatcher`, async () => {
      const origin = await startStallingOrigin(stall)
      // Timeouts the cache cannot know: the waiters have no clock of their own, only the shared request's failure.
      const agent = createTestAgent({ dispatcher: new Agent(AGENT_TIMEOUTS) }) // closed with it
      expectAllTimedOut(await sendAll(() => requestOutcome(origin.url, { dispatcher: agent })), stall, origin)
    })

    it(`fails every request() caller with the timeout it gives per request when the origin stalls ${stall}, asking once`, async () => {
      const origin = await startStallingOrigin(stall)
      const agent = createTestAgent()
      const outcomes = await sendAll(() => requestOutcome(origin.url, { dispatcher: agent, ...AGENT_TIMEOUTS }))
      expectAllTimedOut(outcomes, stall, origin)
    })

    it(`fails a waiter at its own shorter timeout while the request it waits on goes on (${stall})`, async () => {
      const origin = await startStallingOrigin(stall)
      const agent = createTestAgent() // the leader waits undici's default five minutes, until the test ends
      let leaderSettled = false
      const leader = requestOutcome(origin.url, { dispatcher: agent }).finally(() => (leaderSettled = true))
      await new Promise((resolve) => setTimeout(resolve, 50)) // the leader's request is on its way
      const waiter = await requestOutcome(origin.url, { dispatcher: agent, ...AGENT_TIMEOUTS })
      expect(waiter.code).toBe(EXPECTED_CODE[stall])
      expect(leaderSettled).toBe(false) // the waiter did not wait for the shared request to end
      expect(origin.requests).toBe(1)
      await origin.stop() // ends the leader's wait
      expect((await leader).code).not.toBe('none')
    })
  }

  it("hands the waiters the shared request's connect timeout, trying to connect once", async () => {
    let lookups = 0
    // A host name whose lookup never answers: the connection attempt hangs until undici's connect timeout.
    const connect = { timeout: TIMEOUT_MS, lookup: () => void lookups++ }
    const agent = createTestAgent({ agentOptions: { connect } })
    const outcomes = await sendAll(() => requestOutcome('http://unanswered.localhost/', { dispatcher: agent }))
    expect(outcomes.map((outcome) => outcome.code)).toEqual(Array.from({ length: CALLERS }, () => 'UND_ERR_CONNECT_TIMEOUT'))
    expect(lookups).toBe(1)
  })

  it('sends a waiter that allows a longer headersTimeout than the request it waits on to the origin on its own', async () => {
    const origin = await startStallingOrigin('before-headers', { answersAfterMs: 2 * TIMEOUT_MS })
    const agent = createTestAgent()
    const leader = requestOutcome(origin.url, { dispatcher: agent, headersTimeout: TIMEOUT_MS })
    const waiter = get(origin.url, agent) // undici's default headersTimeout: it would have waited for "late"
    expect((await leader).code).toBe('UND_ERR_HEADERS_TIMEOUT')
    expect((await waiter).body).toBe('late')
    expect(origin.requests).toBe(2)
  })

  // Review 2, finding 8: with timeouts the cache cannot know, a request leaving its timeout to the dispatcher
  // and one giving its own do not wait on each other, either way round; each asks the origin on its own.
  for (const client of ['request', 'fetch'] as const) {
    it(`fails a ${client}() caller at its dispatcher's headersTimeout, not the longer one an identical request gives itself`, async () => {
      const origin = await startStallingOrigin('before-headers')
      const dispatcher = composeOnAgent({ headersTimeout: TIMEOUT_MS })
      const finished: string[] = []
      const longer = requestOutcome(origin.url, { dispatcher, headersTimeout: LONGER_TIMEOUT_MS }).then(() => finished.push('longer'))
      await new Promise((resolve) => setTimeout(resolve, 50)) // the longer request is on its way
      const send = client === 'request' ? () => requestOutcome(origin.url, { dispatcher }) : () => fetchOutcome(origin.url, dispatcher)
      expect((await send()).code).toBe('UND_ERR_HEADERS_TIMEOUT')
      finished.push('default')
      expect(origin.requests).toBe(2)
      await origin.stop() // ends the longer request's wait
      await longer
      expect(finished).toEqual(['default', 'longer'])
    }, 2 * LONGER_TIMEOUT_MS) // so that, coalesced, it fails by its assertions rather than by the test's timeout
  }

  it('keeps apart the requests of two dispatchers one interceptor is composed on, whose timeouts differ', async () => {
    const origin = await startStallingOrigin('before-headers')
    const interceptor = cacheInterceptor({ store: new MemoryStore() })
    const longerAgent = new Agent({ headersTimeout: LONGER_TIMEOUT_MS })
    const shorterAgent = new Agent({ headersTimeout: TIMEOUT_MS })
    onTestFinished(async () => void (await Promise.all([longerAgent.destroy(), shorterAgent.destroy()])))
    const finished: string[] = []
    const longer = requestOutcome(origin.url, { dispatcher: longerAgent.compose(interceptor) }).then(() => finished.push('longer'))
    await new Promise((resolve) => setTimeout(resolve, 50)) // the longer request is on its way
    expect((await requestOutcome(origin.url, { dispatcher: shorterAgent.compose(interceptor) })).code).toBe('UND_ERR_HEADERS_TIMEOUT')
    finished.push('shorter')
    expect(origin.requests).toBe(2)
    await origin.stop() // ends the longer request's wait
    await longer
    expect(finished).toEqual(['shorter', 'longer'])
  }, 2 * LONGER_TIMEOUT_MS)

  it("lets a caller that gives itself a longer headersTimeout than the dispatcher's outlast an identical request's failure", async () => {
    // The origin never answers the caller on the dispatcher's timeout, and answers the other "late" (an
    // unkeyed header tells them apart, whichever reaches it first).
    const origin = await startOrigin((incoming, response) => {
      if (incoming.headers['x-caller'] === 'longer') setTimeout(() => response.end('late'), 2 * TIMEOUT_MS)
    })
    const dispatcher = composeOnAgent({ headersTimeout: TIMEOUT_MS })
    const shorter = requestOutcome(origin.url, { dispatcher })
    const longer = requestOutcome(origin.url, { dispatcher, headersTimeout: LONGER_TIMEOUT_MS, headers: { 'x-caller': 'longer' } })
    expect((await shorter).code).toBe('UND_ERR_HEADERS_TIMEOUT')
    expect((await longer).code).toBe('none') // it waited for "late"
    expect(origin.requests).toBe(2)
  })

  it('serves every waiter the stale entry under stale-if-error when the shared revalidation times out, asking once', async () => {
    const clock = useFakeDate()
    let stalled = false
    const origin = await startOrigin((_incoming, response) => {
      if (stalled) return
      response.writeHead(200, { 'cache-control': 'max-age=60, stale-if-error=600' })
      response.end('v1')
    })
    const agent = createTestAgent({ agentOptions: { headersTimeout: TIMEOUT_MS } })
    await get(origin.url, agent)
    clock.advance(61_000)
    stalled = true
    const responses = await Promise.all(Array.from({ length: CALLERS }, () => get(origin.url, agent)))
    expect(responses.map((response) => response.body)).toEqual(Array.from({ length: CALLERS }, () => 'v1'))
    expect(responses.every((response) => statusOf(response.headers) === 'stale')).toBe(true)
    expect(origin.requests).toBe(2) // the first store, then one revalidation for all five
  })
})
