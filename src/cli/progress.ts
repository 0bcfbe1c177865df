import { ImagegenError } from '../core/errors'
import { imageLabel, type PlannedImage } from '../core/plan'
import type { Project } from '../core/project'
import { GenerationError, type GenerateEvent, type MadeImage } from '../core/scheduler'
import { colors, formatSeconds, printable, type CommandContext, type Terminal } from './terminal'

/** Terminal codes that hide and show the cursor (DECTCEM). */
export const HIDE_CURSOR = '\x1b[?25l'
export const SHOW_CURSOR = '\x1b[?25h'

export type ProgressState = Record<'total' | 'done' | 'failed' | 'inFlight' | 'seconds', number>

/** One line of the progress bar, fitted to `columns`. */
export function renderProgress({ total, done, failed, inFlight, seconds }: ProgressState, columns: number): string {
  const details = [`${inFlight} in flight`, ...(failed > 0 ? [`${failed} failed`] : []), formatSeconds(seconds)]
  const text = ` ${done + failed}/${total} · ${details.join(' · ')}`
  const width = Math.max(10, Math.min(30, columns - text.length - 12))
  const filled = total === 0 ? width : Math.round((width * (done + failed)) / total)
  return `imagegen ${'█'.repeat(filled)}${'░'.repeat(width - filled)}${text}`.slice(0, Math.max(columns - 1, 20))
}

/**
 * What the scheduler reports, on stderr: on an interactive terminal, a progress bar redrawn in place (done/total, in flight, failed,
 * elapsed) with resumes and failures above it, the cursor hidden until `stop()` or the process exits (a second Ctrl-C, a crash);
 * elsewhere (logs, CI), a line per submitted and finished image. `note` prints a line too. Failures are coloured as errors, the
 * provider's warnings as warnings. */
export function barReporter(terminal: Terminal, isInterrupt: (error: Error) => boolean) {
  const { stderr: stream, interactive: bar } = terminal
  const started = performance.now()
  const inFlight = new Set<string>()
  const counts = { total: 0, done: 0, failed: 0 }
  const state = (): ProgressState => ({ ...counts, inFlight: inFlight.size, seconds: (performance.now() - started) / 1000 })
  // Every write starts by erasing the line: the bar is redrawn in place, and a line printed above takes its place.
  const draw = () => void (bar && stream.write(`\r\x1b[2K${renderProgress(state(), stream.columns || 80)}`))
  const note = (line: string) => {
    if (!bar) return terminal.err(line)
    stream.write(`\r\x1b[2K${printable(line)}\n`)
    draw()
  }
  const { red, yellow } = colors(terminal)
  const say = (text: string, paint: (text: string) => string = String) => note(paint(`imagegen: ${text}`))
  const count = () => (bar ? '' : `[${counts.done + counts.failed}/${counts.total}] `)
  const timer = bar ? setInterval(draw, 100).unref() : undefined
  // Whatever ends the process while the bar is up, the cursor comes back (writes to a TTY are synchronous).
  const showCursor = () => void stream.write(SHOW_CURSOR)
  if (bar) {
    stream.write(HIDE_CURSOR)
    process.once('exit', showCursor)
  }
  return {
    onEvent(event: GenerateEvent) {
      if (event.type === 'start') counts.total = event.total
      else if (event.type === 'submitted') inFlight.add(event.image.key)
      else if (event.type === 'generated' || event.type === 'failed') inFlight.delete(event.image.key)
      if (event.type === 'generated') counts.done++
      // An image stopped by Ctrl-C has not failed: its journal resumes it next run.
      if (event.type === 'failed' && !isInterrupt(event.error)) counts.failed++
      const image = 'image' in event ? imageLabel(event.image) : ''
      if (event.type === 'waiting') say(`waiting for ${image}: another process is making it (${event.holder})`)
      else if (event.type === 'warning') say(`${image}: ${event.message}`, yellow)
      else if (event.type === 'generated' && event.elsewhere && !bar) say(`${count()}cached ${image}: another process made it`)
      else if (event.type === 'submitted' && (event.resumed || !bar)) say(`${event.resumed ? 'resumed' : 'submitted'} ${image} (${event.predictionId})`)
      else if (event.type === 'generated' && !bar) say(`${count()}generated ${image} in ${formatSeconds(event.seconds)}`)
      else if (event.type === 'failed' && !isInterrupt(event.error)) say(`${count()}failed ${image}: ${event.error.message}`, red)
      else draw()
    },
    note,
    stop() {
      clearInterval(timer)
      if (!bar) return
      process.off('exit', showCursor)
      stream.write(`\r\x1b[2K${SHOW_CURSOR}`)
    },
  }
}

/** What a reported run made: the images that arrived, those that failed (not those stopped), and the signal that stopped it. */
export interface ReportedRun {
  generated: MadeImage[]
  failed: { image: PlannedImage; error: Error }[]
  stoppedBy?: 'SIGINT' | 'SIGTERM'
}

/**
 * Generates `missing` (already bill-guarded) with the project's scheduler, shown by `barReporter` unless `quiet`
 * (`--json`). The first Ctrl-C or SIGTERM stops it cleanly: images that arrived stay cached, submitted predictions stay
 * journaled, and they are not counted as failed. Throws what is not a `GenerationError` (e.g. an unwritable cache).
 */
export async function generateReported(
  project: Project,
  missing: readonly PlannedImage[],
  { terminal, onSignal, quiet }: Pick<CommandContext, 'terminal' | 'onSignal'> & { quiet: boolean },
): Promise<ReportedRun> {
  const run: ReportedRun = { generated: [], failed: [] }
  const controller = new AbortController()
  const isInterrupt = (error: Error) => controller.signal.aborted && (error === controller.signal.reason || error.name === 'AbortError')
  const reporter = quiet ? undefined : barReporter(terminal, isInterrupt)
  const unsubscribe = onSignal?.((name) => {
    run.stoppedBy = name
    controller.abort(new ImagegenError('STOPPED', `stopped by ${name}`))
    reporter?.note('imagegen: stopping — images that arrived are kept, submitted predictions stay journaled (Ctrl-C again quits at once)')
  })
  try {
    run.generated = await project.scheduler({ signal: controller.signal, onEvent: reporter?.onEvent }).generate(missing)
  } catch (error) {
    if (!(error instanceof GenerationError)) throw error
    run.generated = error.generated
    run.failed = error.failures.filter(({ error }) => !isInterrupt(error))
  } finally {
    reporter?.stop()
    unsubscribe?.()
  }
  return run
}
