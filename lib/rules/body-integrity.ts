/**
 * Whether a stored body is the one its entry describes (issue #16 part 9). A store may hand back a body
 * shorter or longer than it was given (a user's store that truncates, a bug, a disk): served under the
 * entry's own `Content-Length`, such a body reaches request() and fetch() without an error, cut short or
 * run on. Only stored bodies are checked: what a store is given was checked on its way in (tee.ts).
 */
import { bodyLength } from '../stores/body.js'
import { contentLength } from './headers.js'
import type { ResponseEntry } from '../stores/store.js'

// RFC 9110 §15.3.5, §15.4.5: these responses end with their header section, whatever Content-Length says.
const BODYLESS_STATUSES = new Set([204, 304])

/**
 * Whether the entry's body has the length the entry declares: none for a 204 or 304, else its
 * `Content-Length` (the length of the content-coded bytes, which is what is stored). A stored HEAD
 * response has no body, its `Content-Length` being the GET's; a body the origin sent without a valid
 * `Content-Length` (chunked) declares no length, so there is nothing to check it against.
 */
export function hasDeclaredLength(entry: ResponseEntry): boolean {
  if (entry.method === 'HEAD') return true
  const length = bodyLength(entry.body)
  if (BODYLESS_STATUSES.has(entry.status)) return length === 0
  const field = entry.headers['content-length']
  if (field === String(length)) return true // as almost every entry has it: spares the parse on each hit
  const declared = contentLength(field)
  return declared === undefined || declared === length
}
