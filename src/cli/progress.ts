import { imageLabel } from '../core/plan'
import type { GenerateEvent } from '../core/scheduler'
import { formatSeconds, type Terminal } from './terminal'

export type ProgressState = Record<'total' | 'done' | 'failed' | 'inFlight' | 'seconds', number>

/** One line of the progress bar, fitted to `columns`. */
export function renderProgress({ total, done, failed, inFlight, seconds }: ProgressState, columns: number): string {
  const details = [`${inFlight} in flight`, ...(failed > 0 ? [`${failed} failed`] : []), formatSeconds(seconds)]
  const text = ` ${done + failed}/${total} · ${details.join(' · ')}`
  const width = Math.max(10, Math.min(30, columns - text.length - 12))
  const filled = total === 0 ? width : Math.round((width * (done + failed)) / total)
  return `imagegen ${'█'.repeat(filled)}${'░'.repeat(width - filled)}${text}`.slice(0, Math.max(columns - 1, 20))
}

/** Counts what the scheduler reports, for the reporters to show. */
function tally(isInterrupt: (error: Error) => boolean) {
  const started = performance.now()
  const inFlight = new Set<string>()
  const counts = { total: 0, done: 0, failed: 0 }
  return {
    counts,
    apply(event: GenerateEvent) {
      if (event.type === 'start') counts.total = event.total
      else if (event.type === 'submitted') inFlight.add(event.image.key)
      else if (event.type === 'generated' || event.type === 'failed') inFlight.delete(event.image.key)
      if (event.type === 'generated') counts.done++
      // An image stopped by Ctrl-C has not failed: its journal resumes it next run.
      if (event.type === 'failed' && !isInterrupt(event.error)) counts.failed++
    },
    state: (): ProgressState => ({ ...counts, inFlight: inFlight.size, seconds: (performance.now() - started) / 1000 }),
  }
}

/** A line per submitted and per finished image, for logs and CI. `note` prints a line for people while the run goes on. */
export function lineReporter(terminal: Terminal, isInterrupt: (error: Error) => boolean) {
  const { counts, apply } = tally(isInterrupt)
  const count = () => `[${counts.done + counts.failed}/${counts.total}]`
  return {
    onEvent(event: GenerateEvent) {
      apply(event)
      if (!('image' in event)) return
      const image = imageLabel(event.image)
      if (event.type === 'waiting') terminal.err(`imagegen: waiting for ${image}: another process is making it (${event.holder})`)
      else if (event.type === 'submitted') terminal.err(`imagegen: ${event.resumed ? 'resumed' : 'submitted'} ${image} (${event.predictionId})`)
      else if (event.type === 'generated') terminal.err(`imagegen: ${count()} generated ${image} in ${formatSeconds(event.seconds)}`)
      else if (!isInterrupt(event.error)) terminal.err(`imagegen: ${count()} failed ${image}: ${event.error.message}`)
    },
    note: (line: string) => terminal.err(line),
    stop() {},
  }
}

/** A progress bar redrawn in place on stderr: done/total, in flight, failed, elapsed; failures and notes go above it. */
export function barReporter(terminal: Terminal, isInterrupt: (error: Error) => boolean) {
  const progress = tally(isInterrupt)
  const stream = terminal.stderr
  // Every write starts by erasing the line: the bar is redrawn in place, and a line printed above takes its place.
  const draw = () => stream.write(`\r\x1b[2K${renderProgress(progress.state(), stream.columns || 80)}`)
  const above = (line: string) => {
    stream.write(`\r\x1b[2K${line}\n`)
    draw()
  }
  const timer = setInterval(draw, 100).unref()
  return {
    onEvent(event: GenerateEvent) {
      progress.apply(event)
      if (event.type === 'failed' && !isInterrupt(event.error)) above(`imagegen: failed ${imageLabel(event.image)}: ${event.error.message}`)
      else if (event.type === 'submitted' && event.resumed) above(`imagegen: resumed ${imageLabel(event.image)} (${event.predictionId})`)
      else draw()
    },
    note: above,
    stop() {
      clearInterval(timer)
      stream.write('\r\x1b[2K')
    },
  }
}
