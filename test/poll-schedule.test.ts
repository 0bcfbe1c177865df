/** The default poll schedule as a pure function: the wait before each poll, given when predictions typically end. */
import { describe, expect, it } from 'vitest'
import { POLL_FLOOR_MS, pollWait } from '../src/prediction/runtime'

const CAP = 5000

/** The times (ms after the submit) of the polls within `until`, on the schedule for `expected`. */
function pollTimes(expected: number, until: number): number[] {
  const times: number[] = []
  for (let at = pollWait(0, expected, CAP); at <= until; at += pollWait(at, expected, CAP)) times.push(Math.round(at))
  return times
}

describe('the default poll schedule', () => {
  it('with no history (a first build), polls every 250 ms for the first second, then ×1.25 up to every 5 s', () => {
    expect(pollTimes(0, 5000)).toEqual([250, 500, 750, 1000, 1250, 1563, 1953, 2441, 3052, 3815, 4768])
    // a 1.5 s prediction is seen done at the 6th poll, 62 ms late (the fixed 1000 ms schedule: at 2.5 s)
    expect(pollTimes(0, 1600).length).toBe(6)
    expect(pollWait(60_000, 0, CAP)).toBe(CAP)
  })

  it('with history, polls once at the expected end, then densely for a second, then backs off', () => {
    expect(pollTimes(1500, 5000)).toEqual([1500, 1750, 2000, 2250, 2500, 2750, 3063, 3453, 3941, 4552])
    expect(pollWait(0, 1500, CAP)).toBe(1500)
    // a second late: still every 250 ms; two seconds late, every 500 ms
    expect(pollWait(2500, 1500, CAP)).toBe(POLL_FLOOR_MS)
    expect(pollWait(3500, 1500, CAP)).toBe(500)
  })

  it('never waits longer than the cap, even before a long expected end', () => {
    expect(pollTimes(12_000, 12_000)).toEqual([5000, 10_000, 12_000])
    expect(pollWait(0, 12_000, 3000)).toBe(3000)
    expect(pollWait(600_000, 1500, CAP)).toBe(CAP)
  })

  it('never polls more often than every 250 ms, whatever the history (≤ 4 polls a second a prediction)', () => {
    for (const expected of [0, 1, 100, 1500, 8300, 60_000])
      for (let elapsed = 0; elapsed < 70_000; elapsed += 97) {
        const wait = pollWait(elapsed, expected, CAP)
        expect(wait).toBeGreaterThanOrEqual(POLL_FLOOR_MS)
        expect(wait).toBeLessThanOrEqual(CAP)
      }
    expect(pollWait(1499, 1500, CAP)).toBe(POLL_FLOOR_MS)
  })
})
