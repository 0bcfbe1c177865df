import { imageLabel } from '../core/plan'
import type { GenerateEvent } from '../core/scheduler'
import { formatSeconds, type Terminal } from './terminal'

export interface ProgressState {
  total: number
  done: number
  failed: number
  inFlight: number
  seconds: number
}

const BAR_CHARS = { full: '█', empty: '░' }

/** One line of the progress bar, fitted to `columns`. */
export function renderProgress(state: ProgressState, columns = 80): string {
  const counts = `${state.done + state.failed}/${state.total}`
  const details = [`${state.inFlight} in flight`, ...(state.failed > 0 ? [`${state.failed} failed`] : []), formatSeconds(state.seconds)]
  const text = ` ${counts} · ${details.join(' · ')}`
  const width = Math.max(10, Math.min(30, columns - text.length - 12))
  const filled = state.total === 0 ? width : Math.round((width * (state.done + state.failed)) / state.total)
  return `imagegen ${BAR_CHARS.full.repeat(filled)}${BAR_CHARS.empty.repeat(width - filled)}${text}`.slice(0, Math.max(columns - 1, 20))
}

export interface Reporter {
  onEvent(event: GenerateEvent): void
  /** A note for people while the run goes on (kept above the bar on a terminal). */
  note(line: string): void
  stop(): void
}

/** Counts what the scheduler reports; the reporters draw it. */
class Tally {
  readonly submitted = new Set<string>()
  total = 0
  done = 0
  failed = 0
  private readonly started = performance.now()

  constructor(private readonly isInterrupt: (error: Error) => boolean) {}

  apply(event: GenerateEvent): void {
    if (event.type === 'start') this.total = event.total
    else if (event.type === 'submitted') this.submitted.add(event.image.key)
    else if (event.type === 'generated') {
      this.done++
      this.submitted.delete(event.image.key)
    } else if (event.type === 'failed') {
      // an image stopped by Ctrl-C has not failed: its journal resumes it next run
      if (!this.isInterrupt(event.error)) this.failed++
      this.submitted.delete(event.image.key)
    }
  }

  state(): ProgressState {
    return { total: this.total, done: this.done, failed: this.failed, inFlight: this.submitted.size, seconds: (performance.now() - this.started) / 1000 }
  }
}

/** Nothing but the notes (for `--json`, where stdout carries the result). */
export function silentReporter(): Reporter {
  return { onEvent() {}, note() {}, stop() {} }
}

/** A line per submitted and per finished image, for logs and CI. */
export function lineReporter(terminal: Terminal, isInterrupt: (error: Error) => boolean): Reporter {
  const tally = new Tally(isInterrupt)
  const count = () => `[${tally.done + tally.failed}/${tally.total}]`
  return {
    onEvent(event) {
      tally.apply(event)
      switch (event.type) {
        case 'waiting':
          terminal.err(`imagegen: waiting for ${imageLabel(event.image)}: another process is making it (${event.holder})`)
          break
        case 'submitted':
          terminal.err(`imagegen: ${event.resumed ? 'resumed' : 'submitted'} ${imageLabel(event.image)} (${event.predictionId})`)
          break
        case 'generated':
          terminal.err(`imagegen: ${count()} generated ${imageLabel(event.image)} in ${formatSeconds(event.seconds)}`)
          break
        case 'failed':
          if (!isInterrupt(event.error)) terminal.err(`imagegen: ${count()} failed ${imageLabel(event.image)}: ${event.error.message}`)
          break
      }
    },
    note: (line) => terminal.err(line),
    stop() {},
  }
}

/** A progress bar redrawn in place on stderr: done/total, in flight, failed, elapsed. */
export function barReporter(terminal: Terminal, isInterrupt: (error: Error) => boolean): Reporter {
  const tally = new Tally(isInterrupt)
  const stream = terminal.stderr
  let drawn = false
  const clear = () => {
    if (drawn) stream.write('\r\x1b[2K')
    drawn = false
  }
  const draw = () => {
    stream.write(`\r\x1b[2K${renderProgress(tally.state(), stream.columns || 80)}`)
    drawn = true
  }
  const above = (line: string) => {
    clear()
    stream.write(`${line}\n`)
    draw()
  }
  const timer = setInterval(draw, 100)
  timer.unref()
  return {
    onEvent(event) {
      tally.apply(event)
      if (event.type === 'failed' && !isInterrupt(event.error)) {
        above(`imagegen: failed ${imageLabel(event.image)}: ${event.error.message}`)
      } else if (event.type === 'submitted' && event.resumed) {
        above(`imagegen: resumed ${imageLabel(event.image)} (${event.predictionId})`)
      } else {
        draw()
      }
    },
    note: above,
    stop() {
      clearInterval(timer)
      clear()
    },
  }
}
