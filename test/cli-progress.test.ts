import { describe, expect, it } from 'vitest'
import { barReporter, renderProgress } from '../src/cli/progress'
import type { Terminal } from '../src/cli/terminal'
import type { KeyedEntry } from '../src/core/entries'
import type { PlannedImage } from '../src/core/plan'

const image = (key: string, name: string): PlannedImage => ({
  key,
  entries: [{ key, name, location: { file: 'art.images.yaml', line: 5, column: 3 } } as KeyedEntry],
})

describe('the progress bar', () => {
  it('shows done/total, in flight, failed and elapsed, fitted to the terminal', () => {
    expect(renderProgress({ total: 10, done: 3, failed: 0, inFlight: 2, seconds: 4.25 }, 80)).toBe(
      `imagegen ${'█'.repeat(9)}${'░'.repeat(21)} 3/10 · 2 in flight · 4.3s`,
    )
    expect(renderProgress({ total: 4, done: 1, failed: 1, inFlight: 0, seconds: 1 }, 60)).toBe(
      `imagegen ${'█'.repeat(6)}${'░'.repeat(6)} 2/4 · 0 in flight · 1 failed · 1.0s`,
    )
    expect(renderProgress({ total: 4, done: 1, failed: 1, inFlight: 0, seconds: 1 }, 30).length).toBeLessThan(30)
  })

  it('redraws in place with the cursor hidden, prints failures above the bar, and clears itself and shows the cursor at the end', () => {
    let written = ''
    const stderr = { write: (chunk: string) => ((written += chunk), true), columns: 80, isTTY: true } as unknown as Terminal['stderr']
    const terminal: Terminal = { out() {}, err() {}, stderr, interactive: true }
    const stopped = new Error('stopped by SIGINT')
    const reporter = barReporter(terminal, (error) => error === stopped)
    const [a, b, c] = [image('a', 'one'), image('b', 'two'), image('c', 'three')]
    expect(written).toBe('\x1b[?25l')
    reporter.onEvent({ type: 'start', total: 3 })
    reporter.onEvent({ type: 'submitted', image: a, predictionId: 'pred_1', resumed: false })
    reporter.onEvent({ type: 'submitted', image: b, predictionId: 'pred_2', resumed: true })
    reporter.onEvent({ type: 'submitted', image: c, predictionId: 'pred_3', resumed: false })
    expect(written).toContain('imagegen: resumed art.images.yaml:5:3 `two` (pred_2)\n')
    reporter.onEvent({ type: 'failed', image: a, error: new Error('prompt refused') })
    expect(written).toContain('\r\x1b[2Kimagegen: failed art.images.yaml:5:3 `one`: prompt refused\n')
    expect(written).toMatch(/\r\x1b\[2Kimagegen [█░]+ 1\/3 · 2 in flight · 1 failed · \d+\.\ds$/)
    reporter.onEvent({ type: 'failed', image: c, error: stopped })
    expect(written).toMatch(/ 1\/3 · 1 in flight · 1 failed · \d+\.\ds$/)
    reporter.stop()
    expect(written.endsWith('\r\x1b[2K\x1b[?25h')).toBe(true)
  })

  it('says above the bar who holds the lock of an image it waits for', () => {
    let written = ''
    const stderr = { write: (chunk: string) => ((written += chunk), true), columns: 80, isTTY: true } as unknown as Terminal['stderr']
    const reporter = barReporter({ out() {}, err() {}, stderr, interactive: true }, () => false)
    reporter.onEvent({ type: 'start', total: 1 })
    reporter.onEvent({ type: 'waiting', image: image('a', 'one'), holder: 'pid 4242 on host build-7 since 2026-11-30T20:01:02.000Z' })
    reporter.stop()
    expect(written).toContain('\r\x1b[2Kimagegen: waiting for art.images.yaml:5:3 `one`: another process is making it (pid 4242 on host build-7 since 2026-11-30T20:01:02.000Z)\n')
  })
})
