import { request, type Dispatcher } from 'undici'

export interface ReadResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One undici request() through `dispatcher`, body read whole: what a user sees. */
export async function fetchText(
  url: string,
  dispatcher: Dispatcher,
  options: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string } = {},
): Promise<ReadResponse> {
  const response = await request(url, { dispatcher, ...options })
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() }
}
