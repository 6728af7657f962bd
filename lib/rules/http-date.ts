/**
 * HTTP-date (RFC 9110 §5.6.7): the three formats a recipient must accept, and nothing else. `Date.parse`
 * accepts far more (other time zones, missing commas, one-digit hours…), and RFC 9111 §5.3 says an invalid
 * `Expires` means "already expired", so the difference decides whether a response is served. Names of days,
 * months and the zone are matched case-insensitively (lenient where the RFC leaves room, strict in form).
 * No package on the registry we reach does this strictly, so it is written here.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']
const DAY = '(?:mon|tue|wed|thu|fri|sat|sun)'
const LONG_DAY = '(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)'
const MONTH = `(${MONTHS.join('|')})`
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})'

// Sun, 06 Nov 1994 08:49:37 GMT
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} gmt$`, 'i')
// Sunday, 06-Nov-94 08:49:37 GMT
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} gmt$`, 'i')
// Sun Nov  6 08:49:37 1994
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`, 'i')

/**
 * The last IMF-fixdate read, and its epoch: the responses an origin sends within one second share their
 * `Date`, so on a run of misses most dates are read again, and this spares the match.
 */
let lastImfFixdate = { value: '', epoch: 0 }

/** Milliseconds since the epoch for a valid HTTP-date, otherwise `undefined`. `now` places RFC 850's two-digit years. */
export function parseHttpDate(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined
  if (value === lastImfFixdate.value) return lastImfFixdate.epoch
  let match = IMF_FIXDATE.exec(value)
  if (match) {
    const epoch = toEpoch(Number(match[3]), match[2]!, Number(match[1]), match.slice(4, 7))
    if (epoch !== undefined) lastImfFixdate = { value, epoch }
    return epoch
  }
  match = RFC850_DATE.exec(value)
  if (match) return toEpoch(fullYear(Number(match[3]), now), match[2]!, Number(match[1]), match.slice(4, 7))
  match = ASCTIME_DATE.exec(value)
  if (match) return toEpoch(Number(match[6]), match[1]!, Number(match[2]!.trim()), match.slice(3, 6))
  return undefined
}

/** Whether the value is in the preferred format, IMF-fixdate (as `Date.prototype.toUTCString()` writes it). */
export function isImfFixdate(value: string): boolean {
  return value === lastImfFixdate.value || IMF_FIXDATE.test(value)
}

/** RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the most recent past year with those digits. */
function fullYear(twoDigits: number, now: number): number {
  const thisYear = new Date(now).getUTCFullYear()
  let year = thisYear - (thisYear % 100) + twoDigits
  if (year > thisYear + 50) year -= 100
  return year
}

function toEpoch(year: number, monthName: string, day: number, [hours, minutes, seconds]: string[]): number | undefined {
  const month = MONTHS.indexOf(monthName.toLowerCase())
  const [h, m, s] = [Number(hours), Number(minutes), Number(seconds)]
  if (h > 23 || m > 59 || s > 60) return undefined
  const epoch = Date.UTC(year, month, day, h, m, Math.min(s, 59))
  // Date.UTC rolls 31 Feb over into March; such a day does not exist.
  return new Date(epoch).getUTCDate() === day ? epoch : undefined
}
