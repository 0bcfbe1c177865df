import type { CachedImage } from '../../core/cache'
import { clip, forTerminal, ImagegenError, plural } from '../../core/errors'
import { BillGuard, imageLabel, missingImagesError, type PlannedImage } from '../../core/plan'
import type { Project } from '../../core/project'
import { GenerationError } from '../../core/scheduler'
import { jsonEntry, JSON_VERSION, type GenerateJson, type GenerateJsonImage } from '../json'
import { barReporter, lineReporter, silentReporter, type Reporter } from '../progress'
import { manifestFiles, readEntries } from '../project'
import { EXIT, formatSeconds, table, type CommandContext, type ExitCode } from '../terminal'

export async function generateCommand(ctx: CommandContext, project: Project, paths: string[], flags: Record<string, unknown>): Promise<ExitCode> {
  const json = flags.json === true
  const dryRun = flags['dry-run'] === true
  const { terminal } = ctx
  const say = (line: string) => void (json || terminal.err(line))
  const { options } = project

  const files = await manifestFiles(project, ctx.cwd, paths)
  const entries = await readEntries(project, files)
  const plan = project.plan(entries)
  const pending = await project.pending(plan.missing)
  const guard = new BillGuard(options.maxNewImages)
  const withinLimit = guard.fits(plan.missing)
  const started = performance.now()
  const states = new Map<string, { state: GenerateJsonImage['state']; cached?: CachedImage; error?: string }>()
  for (const image of plan.cached) states.set(image.key, { state: 'cached', cached: image.cached })
  const summary = { manifests: files.length, entries: entries.length, images: plan.images.length, cached: plan.cached.length, toGenerate: plan.missing.length, generated: 0, failed: 0, pending: 0 }
  const result: GenerateJson = {
    version: JSON_VERSION, command: 'generate', ok: true, exitCode: EXIT.ok, root: project.root, cacheDir: project.display(options.cacheDir),
    provider: options.provider.name, dryRun, interrupted: false, maxNewImages: guard.limit, withinLimit, summary, seconds: 0, images: [],
  }

  const finish = (code: ExitCode, error?: ImagegenError): ExitCode => {
    Object.assign(result, { exitCode: code, ok: code === EXIT.ok, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) })
    if (error) result.error = forTerminal(error)
    for (const image of plan.images) {
      const known = states.get(image.key)
      const { prompt, width, height } = image.entries[0]!.pixels
      result.images.push({
        key: image.key,
        state: known?.state ?? (pending.has(image.key) ? 'pending' : 'missing'),
        entries: image.entries.map(jsonEntry),
        prompt, width, height,
        file: known?.cached ? project.display(known.cached.path) : null,
        predictionId: known?.cached?.record.predictionId ?? pending.get(image.key)?.state.id ?? null,
        ...(known?.error !== undefined && { error: known.error }),
      })
    }
    summary.pending = result.images.filter((i) => i.state === 'pending').length
    if (json) terminal.out(JSON.stringify(result, null, 2))
    else if (error) terminal.err(result.error!)
    return code
  }

  if (files.length === 0) {
    say(`imagegen: no manifests (*.images.yaml) under ${paths.length ? paths.join(', ') : 'the current folder'}; nothing to generate`)
    return finish(EXIT.ok)
  }
  say(planLine(files.length, plan.images.length, plan.cached.length, plan.missing.length, pending.size, guard.limit))
  if (dryRun) {
    const rows = plan.missing.map((image) => {
      const { width, height, prompt } = image.entries[0]!.pixels
      return [imageLabel(image), image.key.slice(0, 12), `${width}x${height}`, pending.has(image.key) ? 'resume' : 'new', clip(prompt, 60)]
    })
    if (!json) for (const line of table(rows)) terminal.out(line)
    if (!withinLimit) say(`imagegen: a run would be refused by the bill guard; allow it with \`imagegen generate --max-new ${plan.missing.length}\``)
    if (plan.missing.length > 0 && options.cannotGenerate) say(`imagegen: a run could not generate them now: ${options.cannotGenerate}`)
    return finish(EXIT.ok)
  }
  if (plan.missing.length === 0) {
    say(`imagegen: ${plural(plan.images.length, 'image')} — ${plan.cached.length} cached, 0 generated`)
    return finish(EXIT.ok)
  }
  if (options.cannotGenerate) return finish(EXIT.incomplete, missingImagesError(plan.missing.flatMap((image) => image.entries), options.cannotGenerate))
  try {
    guard.take(plan.missing)
  } catch (error) {
    return finish(EXIT.incomplete, error as ImagegenError)
  }

  const controller = new AbortController()
  let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined
  const isInterrupt = (error: Error) => controller.signal.aborted && (error === controller.signal.reason || error.name === 'AbortError')
  const reporter: Reporter = json ? silentReporter() : terminal.interactive ? barReporter(terminal, isInterrupt) : lineReporter(terminal, isInterrupt)
  const unsubscribe = ctx.onSignal?.((name) => {
    stoppedBy = name
    controller.abort(new ImagegenError('STOPPED', `stopped by ${name}`))
    reporter.note('imagegen: stopping — images that arrived are kept, submitted predictions stay journaled (Ctrl-C again quits at once)')
  })
  let generated: CachedImage[] = []
  let failures: { image: PlannedImage; error: Error }[] = []
  try {
    generated = await project.scheduler({ signal: controller.signal, onEvent: (event) => reporter.onEvent(event) }).generate(plan.missing)
  } catch (error) {
    if (!(error instanceof GenerationError)) throw error
    ;({ generated, failures } = error)
  } finally {
    reporter.stop()
    unsubscribe?.()
  }

  for (const cached of generated) states.set(cached.record.key, { state: 'generated', cached })
  const failed = failures.filter(({ error }) => !isInterrupt(error))
  for (const { image, error } of failed) states.set(image.key, { state: 'failed', error: error.message })
  // What is journaled now is what the next run resumes.
  const stillPending = await project.pending(plan.missing.filter((image) => !states.has(image.key)))
  pending.clear()
  for (const [key, value] of stillPending) pending.set(key, value)
  summary.generated = generated.length
  summary.failed = failed.length
  const seconds = (performance.now() - started) / 1000
  say(`imagegen: ${plural(plan.images.length, 'image')} — ${plan.cached.length} cached, ${generated.length} generated${failed.length ? `, ${failed.length} failed` : ''} in ${formatSeconds(seconds)}`)

  if (stoppedBy) {
    result.interrupted = true
    const journaled = pending.size
      ? `; ${plural(pending.size, 'submitted prediction is', 'submitted predictions are')} journaled in ${project.display(options.cacheDir)}/pending/ and resumed without a new submit`
      : ''
    const error = new ImagegenError('STOPPED', `interrupted: ${plural(generated.length, 'image')} generated and cached${journaled}.`, { hint: 'Run `imagegen generate` again to finish.' })
    return finish(stoppedBy === 'SIGINT' ? EXIT.interrupted : EXIT.terminated, error)
  }
  return failed.length > 0 ? finish(EXIT.incomplete, new GenerationError(failed, generated)) : finish(EXIT.ok)
}

function planLine(manifests: number, images: number, cached: number, missing: number, pending: number, limit: number): string {
  const head = `imagegen: ${plural(images, 'image')} in ${plural(manifests, 'manifest')} — ${cached} cached, `
  if (missing === 0) return `${head}nothing to generate`
  const resumed = pending > 0 ? ` (${pending} already submitted, resumed without paying again)` : ''
  const guard = `${missing <= limit ? 'within' : 'OVER'} the limit of ${plural(limit, 'new image')}`
  return `${head}${missing} to generate${resumed}, ${guard}`
}
