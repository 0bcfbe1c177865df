import type { CachedImage, PendingPrediction } from '../../core/cache'
import { ImagegenError } from '../../core/errors'
import { BudgetError, GenerationError, planImages, Scheduler, type PlannedImage } from '../../core/scheduler'
import { integerFlag } from '../args'
import { jsonEntry, JSON_VERSION, type GenerateJson, type GenerateJsonImage } from '../json'
import { barReporter, imageLabel, lineReporter, silentReporter, type Reporter } from '../progress'
import { displayPath, manifestFiles, openProject, readEntries, type Project } from '../project'
import { clip, EXIT, formatSeconds, plural, table, type ExitCode } from '../terminal'
import type { CommandContext } from './context'

/** Stops the run on Ctrl-C (or a CI's SIGTERM); a second signal quits at once. */
class Interrupts {
  readonly controller = new AbortController()
  signalName: NodeJS.Signals | undefined
  private readonly listeners = new Map<NodeJS.Signals, () => void>()

  constructor(onFirst: () => void) {
    for (const name of ['SIGINT', 'SIGTERM'] as const) {
      const listener = () => {
        if (this.signalName) process.exit(name === 'SIGINT' ? EXIT.interrupted : EXIT.terminated)
        this.signalName = name
        this.controller.abort(new ImagegenError(`stopped by ${name}`))
        onFirst()
      }
      this.listeners.set(name, listener)
      process.on(name, listener)
    }
  }

  /** Whether an image failed only because the run was stopped. */
  isInterrupt = (error: Error): boolean => this.controller.signal.aborted && (error === this.controller.signal.reason || error.name === 'AbortError')

  dispose(): void {
    for (const [name, listener] of this.listeners) process.off(name, listener)
  }
}

export async function generateCommand(ctx: CommandContext, paths: string[], flags: Record<string, unknown>): Promise<ExitCode> {
  const json = flags.json === true
  const dryRun = flags['dry-run'] === true
  const concurrency = integerFlag(flags, 'concurrency', 1, 64)
  const maxNewImages = integerFlag(flags, 'max-new', 0)
  const { terminal } = ctx
  const say = (line: string) => {
    if (!json) terminal.err(line)
  }

  const project = openProject(ctx.cwd, { concurrency, maxNewImages }, ctx.env)
  const files = await manifestFiles(project, ctx.cwd, paths)
  const entries = await readEntries(project, files)
  const plan = await planImages(entries, project.cache)
  const pending = await pendingOf(project, plan.missing)
  const limit = project.options.maxNewImages
  const withinLimit = plan.missing.length <= limit
  const started = performance.now()

  const result: GenerateJson = {
    version: JSON_VERSION,
    command: 'generate',
    ok: true,
    exitCode: EXIT.ok,
    root: project.root,
    cacheDir: displayPath(project, project.options.cacheDir),
    provider: project.options.provider.name,
    dryRun,
    interrupted: false,
    maxNewImages: limit,
    withinLimit,
    summary: {
      manifests: files.length,
      entries: entries.length,
      images: plan.images.length,
      cached: plan.cached.length,
      toGenerate: plan.missing.length,
      generated: 0,
      failed: 0,
      pending: 0,
    },
    seconds: 0,
    images: [],
  }
  const states = new Map<string, { state: GenerateJsonImage['state']; cached?: CachedImage; error?: string }>()
  for (const image of plan.cached) states.set(image.key, { state: 'cached', cached: image.cached })

  const finish = (code: ExitCode, error?: string): ExitCode => {
    result.exitCode = code
    result.ok = code === EXIT.ok
    if (error !== undefined) result.error = error
    result.seconds = Number(((performance.now() - started) / 1000).toFixed(3))
    for (const image of plan.images) {
      const known = states.get(image.key)
      const state = known?.state ?? (pending.has(image.key) ? 'pending' : 'missing')
      const cached = known?.cached
      result.images.push({
        key: image.key,
        state,
        entries: image.entries.map(jsonEntry),
        prompt: image.entries[0]!.pixels.prompt,
        width: image.entries[0]!.pixels.width,
        height: image.entries[0]!.pixels.height,
        file: cached ? displayPath(project, cached.path) : null,
        predictionId: cached?.record.predictionId ?? pending.get(image.key)?.predictionId ?? null,
        ...(known?.error !== undefined && { error: known.error }),
      })
    }
    result.summary.pending = result.images.filter((i) => i.state === 'pending').length
    if (json) terminal.out(JSON.stringify(result, null, 2))
    else if (error !== undefined) terminal.err(error)
    return code
  }

  if (files.length === 0) {
    say(`imagegen: no manifests (*.images.yaml) under ${paths.length ? paths.join(', ') : 'the current folder'}; nothing to generate`)
    return finish(EXIT.ok)
  }
  say(planLine(files.length, plan.images.length, plan.cached.length, plan.missing.length, pending.size, limit))

  if (dryRun) {
    if (!json) {
      const rows = plan.missing.map((image) => {
        const { width, height, prompt } = image.entries[0]!.pixels
        return [imageLabel(image), image.key.slice(0, 12), `${width}x${height}`, pending.has(image.key) ? 'resume' : 'new', clip(prompt, 60)]
      })
      for (const line of table(rows)) terminal.out(line)
      if (!withinLimit) say(`imagegen: a run would be refused by the bill guard; allow it with \`imagegen generate --max-new ${plan.missing.length}\``)
      if (plan.missing.length > 0 && project.options.cannotGenerate) say(`imagegen: a run could not generate them now: ${project.options.cannotGenerate}`)
    }
    return finish(EXIT.ok)
  }
  if (plan.missing.length === 0) {
    say(`imagegen: ${plural(plan.images.length, 'image')} — ${plan.cached.length} cached, 0 generated`)
    return finish(EXIT.ok)
  }
  if (project.options.cannotGenerate) {
    const list = plan.missing.map((image) => `  ${imageLabel(image)}`).join('\n')
    return finish(
      EXIT.incomplete,
      `[imagegen] ${plural(plan.missing.length, 'image is', 'images are')} missing and cannot be generated: ${project.options.cannotGenerate}. Nothing was submitted.\n${list}\n` +
        'To fix it, run `imagegen generate` where ATLASCLOUD_API_KEY is set (and IMAGEGEN_OFFLINE is not), then commit the cache folder.',
    )
  }
  if (!withinLimit) return finish(EXIT.incomplete, new BudgetError(plan.missing.length, limit, limit).message)

  const interrupts = new Interrupts(() => reporter.note('imagegen: stopping — images that arrived are kept, submitted predictions stay journaled (Ctrl-C again quits at once)'))
  const reporter: Reporter = json ? silentReporter() : terminal.interactive ? barReporter(terminal, interrupts.isInterrupt) : lineReporter(terminal, interrupts.isInterrupt)
  const scheduler = new Scheduler({
    provider: project.options.provider,
    cache: project.cache,
    concurrency: project.options.concurrency,
    // The plan above already applied the guard; this keeps the scheduler's own check in agreement.
    maxNewImages: limit,
    signal: interrupts.controller.signal,
    onEvent: (event) => reporter.onEvent(event),
  })

  let generated: CachedImage[] = []
  let failures: { image: PlannedImage; error: Error }[] = []
  try {
    generated = await scheduler.generate(plan.missing)
  } catch (error) {
    if (!(error instanceof GenerationError)) throw error
    generated = error.generated
    failures = error.failures
  } finally {
    reporter.stop()
    interrupts.dispose()
  }

  for (const cached of generated) states.set(cached.record.key, { state: 'generated', cached })
  const failed = failures.filter(({ error }) => !interrupts.isInterrupt(error))
  for (const { image, error } of failed) states.set(image.key, { state: 'failed', error: error.message })
  // What is journaled now is what the next run resumes.
  const stillPending = await pendingOf(project, plan.missing.filter((image) => !states.has(image.key)))
  pending.clear()
  for (const [key, value] of stillPending) pending.set(key, value)
  result.summary.generated = generated.length
  result.summary.failed = failed.length

  const seconds = (performance.now() - started) / 1000
  say(
    `imagegen: ${plural(plan.images.length, 'image')} — ${plan.cached.length} cached, ${generated.length} generated` +
      `${failed.length ? `, ${failed.length} failed` : ''} in ${formatSeconds(seconds)}`,
  )

  if (interrupts.signalName) {
    result.interrupted = true
    const cacheDir = displayPath(project, project.options.cacheDir)
    return finish(
      interrupts.signalName === 'SIGINT' ? EXIT.interrupted : EXIT.terminated,
      `[imagegen] interrupted: ${plural(generated.length, 'image')} generated and cached` +
        (pending.size ? `; ${plural(pending.size, 'submitted prediction is', 'submitted predictions are')} journaled in ${cacheDir}/pending/ and resumed without a new submit` : '') +
        '. Run `imagegen generate` again to finish.',
    )
  }
  if (failed.length > 0) return finish(EXIT.incomplete, new GenerationError(failed, generated).message)
  return finish(EXIT.ok)
}

function planLine(manifests: number, images: number, cached: number, missing: number, pending: number, limit: number): string {
  const head = `imagegen: ${plural(images, 'image')} in ${plural(manifests, 'manifest')} — ${cached} cached, `
  if (missing === 0) return `${head}nothing to generate`
  const resumed = pending > 0 ? ` (${pending} already submitted, resumed without paying again)` : ''
  const guard = missing <= limit ? `within the limit of ${plural(limit, 'new image')}` : `OVER the limit of ${plural(limit, 'new image')}`
  return `${head}${missing} to generate${resumed}, ${guard}`
}

/** The journaled predictions of `images` this provider can resume. */
async function pendingOf(project: Project, images: readonly PlannedImage[]): Promise<Map<string, PendingPrediction>> {
  const found = new Map<string, PendingPrediction>()
  await Promise.all(
    images.map(async (image) => {
      const pending = await project.cache.readPending(image.key)
      if (pending?.provider === project.options.provider.name) found.set(image.key, pending)
    }),
  )
  return found
}
