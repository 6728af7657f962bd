import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseHttpDate } from '../lib/rules/http-date.js'

const NOV_6_1994 = Date.UTC(1994, 10, 6, 8, 49, 37)
const NOW = Date.UTC(2026, 10, 22)

describe('parseHttpDate', () => {
  it.each([
    ['IMF-fixdate', 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['the obsolete RFC 850 form', 'Sunday, 06-Nov-94 08:49:37 GMT'],
    ["ANSI C's asctime() form", 'Sun Nov  6 08:49:37 1994'],
    ['names in another case', 'SUN, 06 NOV 1994 08:49:37 gmt'],
  ])('reads %s', (_form, value) => {
    expect(parseHttpDate(value, NOW)).toBe(NOV_6_1994)
  })

  it('places a two-digit year within 50 years ahead, else in the past century', () => {
    expect(parseHttpDate('Thursday, 18-Aug-50 02:01:18 GMT', NOW)).toBe(Date.UTC(2050, 7, 18, 2, 1, 18))
    expect(parseHttpDate('Thursday, 18-Aug-80 02:01:18 GMT', NOW)).toBe(Date.UTC(1980, 7, 18, 2, 1, 18))
  })

  it.each([
    ['another zone', 'Thu, 18 Aug 2050 02:01:18 UTC'],
    ['a named zone', 'Thu, 18 Aug 2050 02:01:18 AEST'],
    ['a two-digit year in IMF-fixdate', 'Thu, 18 Aug 50 02:01:18 GMT'],
    ['no comma', 'Thu 18 Aug 2050 02:01:18 GMT'],
    ['doubled spaces', 'Thu, 18  Aug  2050 02:01:18 GMT'],
    ['dashes with a four-digit year', 'Thu, 18-Aug-2050 02:01:18 GMT'],
    ['periods in the time', 'Thu, 18 Aug 2050 02.01.18 GMT'],
    ['a one-digit hour', 'Thu, 18 Aug 2050 2:01:18 GMT'],
    ['two dates in one field', 'Thu, 18 Aug 2050 02:01:18 GMT, Thu, 18 Aug 2050 02:01:19 GMT'],
    ['a day the month does not have', 'Tue, 31 Feb 2050 02:01:18 GMT'],
    ['hour 24', 'Thu, 18 Aug 2050 24:00:00 GMT'],
    ['the value 0', '0'],
  ])('refuses %s', (_what, value) => {
    expect(parseHttpDate(value, NOW)).toBeUndefined()
  })

  it('reads back every date it is given in IMF-fixdate, to the second', () => {
    const seconds = fc.integer({ min: Date.UTC(1970, 0, 1) / 1000, max: Date.UTC(9999, 11, 31) / 1000 })
    fc.assert(fc.property(seconds, (second) => parseHttpDate(new Date(second * 1000).toUTCString(), NOW) === second * 1000))
  })

  it('never throws, whatever the field holds', () => {
    fc.assert(fc.property(fc.string(), (value) => {
      const parsed = parseHttpDate(value, NOW)
      expect(parsed === undefined || Number.isFinite(parsed)).toBe(true)
    }))
  })
})
