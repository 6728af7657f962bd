import { cacheInfo, type CacheStatus } from '../../lib/index.js'

type Headers = Parameters<typeof cacheInfo>[0]

/** The cache's verdict on a response, read back from its Cache-Status as a user would. */
export function statusOf(headers: Headers): CacheStatus | undefined {
  return cacheInfo(headers).status
}
