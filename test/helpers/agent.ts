import { onTestFinished, vi } from 'vitest'
import { CachingAgent, MemoryStore } from '../../lib/index.js'
import type { CachingAgentOptions } from '../../lib/index.js'

/** A CachingAgent with its own MemoryStore, closed when the test ends. */
export function createTestAgent(options: CachingAgentOptions = {}): CachingAgent {
  const agent = new CachingAgent({ store: new MemoryStore(), ...options })
  onTestFinished(() => agent.close())
  return agent
}

/** Fakes only `Date`, so sockets and timers stay real; `advance(ms)` moves the clock. Restored after the test. */
export function useFakeDate(start = Date.UTC(2026, 0, 1, 12)): { advance(ms: number): void } {
  vi.useFakeTimers({ toFake: ['Date'], now: start })
  onTestFinished(() => {
    vi.useRealTimers()
  })
  return { advance: (ms) => vi.setSystemTime(Date.now() + ms) }
}
