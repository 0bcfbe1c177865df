import { resolve } from 'node:path'
import { forTerminal, ImagegenError, plural } from '../../core/errors'
import { BillGuard, forceName, imageLabel, missingImagesError, planImages, type PlannedImage } from '../../core/plan'
import type { Project } from '../../core/project'
import { GenerationError, type MadeImage } from '../../core/scheduler'
import type { Command } from '../args'
import { jsonEntry, jsonHeader } from '../json'
import { generateReported } from '../progress'
import { noManifests, readManifests } from '../project'
import { clipColumns, EXIT, formatSeconds, printError, printWarning, table, usageError, type CommandContext, type ExitCode } from '../terminal'

export async function generateCommand({ cwd, terminal, onSignal }: CommandContext, project: Project, { paths, flags }: Command): Promise<ExitCode> {
  const json = flags.json === true
  const dryRun = flags['dry-run'] === true
  const { options } = project
  const say = (line: string) => void (json || terminal.err(line))

  const { files, entries } = await readManifests(project, cwd, paths)
  // `--force <manifest>#<entry>`: the manifest relative to where the command runs, named as messages name it
  const forced = new Set(((flags.force as string[] | undefined) ?? []).map((value) => {
    const [manifest, name] = value.split(/#(?=[^#]*$)/)
    const target = `${project.display(resolve(cwd, manifest!))}${name === undefined ? '' : `#${name}`}`
    if (!entries.some((entry) => forceName(entry) === target)) throw usageError(`\`--force ${value}\` names no entry of the manifests read; name one as \`<manifest>#<entry>\` (the manifest alone for a single image)`)
    return target
  }))
  const plan = planImages(entries, project.cache, (image) => image.entries.some((entry) => forced.has(forceName(entry))))
  let pending = await project.pending(plan.missing)
  const guard = new BillGuard(options.maxNewImages)
  const withinLimit = guard.fits(plan.missing)
  const started = performance.now()
  let generated: MadeImage[] = []
  let failed: { image: PlannedImage; error: Error }[] = []
  let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined

  /** Prints the result as JSON, or else the error; returns the exit code. */
  const finish = (code: ExitCode, error?: ImagegenError): ExitCode => {
    if (error && !json) printError(terminal, forTerminal(error))
    if (!json) return code
    const made = new Map(generated.map((cached) => [cached.record.key, cached]))
    const elsewhere = generated.filter((image) => image.elsewhere).length
    const failures = new Map(failed.map(({ image, error }) => [image.key, error.message]))
    terminal.out(JSON.stringify({
      ...jsonHeader('generate', code, project),
      dryRun,
      interrupted: stoppedBy !== undefined,
      maxNewImages: options.maxNewImages,
      withinLimit,
      summary: {
        manifests: files.length, entries: entries.length, images: plan.images.length, cached: plan.cached.length + elsewhere, toGenerate: plan.missing.length,
        generated: generated.length - elsewhere, failed: failed.length, pending: pending.size,
      },
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      images: plan.images.map((image) => {
        const cached = image.cached ?? made.get(image.key)
        const failure = failures.get(image.key)
        const { prompt, width, height } = image.entries[0]!.pixels
        return {
          key: image.key,
          state: image.cached || made.get(image.key)?.elsewhere ? 'cached' : cached ? 'generated' : failure !== undefined ? 'failed' : pending.has(image.key) ? 'pending' : 'missing',
          entries: image.entries.map(jsonEntry),
          prompt, width, height,
          file: cached ? project.display(cached.path) : null,
          predictionId: cached?.record.predictionId ?? pending.get(image.key)?.state.id ?? null,
          ...(failure !== undefined && { error: failure }),
        }
      }),
      ...(error && { error: forTerminal(error) }),
    }, null, 2))
    return code
  }

  if (files.length === 0) {
    say(`${noManifests(paths)}; nothing to generate`)
    return finish(EXIT.ok)
  }
  const resumed = pending.size > 0 ? ` (${pending.size} already submitted, resumed without paying again)` : ''
  const limit = `${withinLimit ? 'within' : 'OVER'} the limit of ${plural(options.maxNewImages, 'new image')}`
  const todo = plan.missing.length === 0 ? 'nothing to generate' : `${plan.missing.length} to generate${resumed}, ${limit}`
  say(`imagegen: ${plural(plan.images.length, 'image')} in ${plural(files.length, 'manifest')} — ${plan.cached.length} cached, ${todo}`)
  if (dryRun) {
    const rows = plan.missing.map((image) => {
      const { width, height, prompt } = image.entries[0]!.pixels
      return [imageLabel(image), image.key.slice(0, 12), `${width}x${height}`, pending.has(image.key) ? 'resume' : 'new', clipColumns(prompt, 60)]
    })
    if (!json) for (const line of table(rows)) terminal.out(line)
    const warn = (line: string) => void (json || printWarning(terminal, line))
    if (!withinLimit) warn(`imagegen: a run would be refused by the bill guard; allow it with \`imagegen generate --max-new ${plan.missing.length}\``)
    if (plan.missing.length > 0 && options.cannotGenerate) warn(`imagegen: a run could not generate them now: ${options.cannotGenerate}`)
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

  ;({ generated, failed, stoppedBy } = await generateReported(project, plan.missing, { terminal, onSignal, quiet: json }))
  // What is still journaled is what the next run resumes.
  const settled = new Set([...generated.map((cached) => cached.record.key), ...failed.map(({ image }) => image.key)])
  pending = await project.pending(plan.missing.filter((image) => !settled.has(image.key)))
  const failures = failed.length > 0 ? `, ${failed.length} failed` : ''
  const seconds = formatSeconds((performance.now() - started) / 1000)
  // made by another process while this one waited for its lock: cached here, not generated (nor paid) twice
  const elsewhere = generated.filter((image) => image.elsewhere).length
  say(`imagegen: ${plural(plan.images.length, 'image')} — ${plan.cached.length + elsewhere} cached, ${generated.length - elsewhere} generated${failures} in ${seconds}`)

  if (stoppedBy) {
    const journaled = pending.size
      ? `; ${plural(pending.size, 'submitted prediction is', 'submitted predictions are')} journaled in ${project.display(options.cacheDir)}/pending/ and resumed without a new submit`
      : ''
    const error = new ImagegenError('STOPPED', `interrupted: ${plural(generated.length, 'image')} generated and cached${journaled}.`, { hint: 'Run `imagegen generate` again to finish.' })
    return finish(stoppedBy === 'SIGINT' ? EXIT.interrupted : EXIT.terminated, error)
  }
  return failed.length > 0 ? finish(EXIT.incomplete, new GenerationError(failed, generated)) : finish(EXIT.ok)
}
