import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { writeFileAtomic } from '../../core/atomic'
import { didYouMean } from '../../core/did-you-mean'
import type { KeyedEntry } from '../../core/entries'
import { forTerminal, ImagegenError, plural } from '../../core/errors'
import { BillGuard, forceName, missingImagesError } from '../../core/plan'
import type { Project } from '../../core/project'
import { GenerationError } from '../../core/scheduler'
import { candidatesOf, contactSheet, DEFAULT_VARIANTS, MAX_VARIANTS } from '../../core/variants'
import type { Command } from '../args'
import { jsonEntry, jsonHeader } from '../json'
import { generateReported, type ReportedRun } from '../progress'
import { EXIT, formatSeconds, printError, printWarning, table, usageError, type CommandContext, type ExitCode } from '../terminal'


/**
 * The entries `<manifest>[#<entry>]` names (the manifest relative to `cwd`, inside the project): the one entry, or every entry of the
 * manifest when `#<entry>` is left out. A missing file, a file that is not a manifest, a `#<entry>` on a single-image
 * manifest or a name the manifest lacks is a usage error (exit 2); a manifest with problems throws its `ManifestError`.
 */
export async function namedEntries(project: Project, cwd: string, target: string): Promise<{ file: string; entries: KeyedEntry[] }> {
  // `a#b.images.yaml` is a file; `art.images.yaml#banner` is an entry of one
  const whole = resolve(cwd, target)
  const [manifest, name] = existsSync(whole) ? [target, undefined] : (target.split(/#(?=[^#]*$)/) as [string, string?])
  const file = resolve(cwd, manifest)
  if (!existsSync(file)) throw usageError(`\`${manifest}\` does not exist`)
  const inside = relative(project.root, file)
  if (inside.startsWith('..') || isAbsolute(inside)) throw usageError(`\`${manifest}\` is outside the project (${project.root})`)
  if (!project.isManifest(file)) throw usageError(`\`${manifest}\` is not a manifest (*.images.yaml) of this project`)
  const { entries } = await project.read(file)
  if (name === undefined) return { file, entries }
  if (entries[0]!.name === undefined) throw usageError(`\`${manifest}\` holds a single image: name it without \`#${name}\``)
  const entry = entries.find((e) => e.name === name)
  if (!entry) {
    const guess = didYouMean(name, entries.map((e) => e.name!))
    throw usageError(`\`${manifest}\` has no entry \`${name}\`${guess ? `: did you mean \`${guess}\`?` : `; its entries are ${entries.map((e) => e.name).join(', ')}`}`)
  }
  return { file, entries: [entry] }
}

/** `--count N`: a whole number from 1 to 64, else a usage error. */
function countOf(raw: unknown): number {
  if (raw === undefined) return DEFAULT_VARIANTS
  const count = /^\d+$/.test(String(raw)) ? Number(raw) : Number.NaN
  if (!(count >= 1 && count <= MAX_VARIANTS)) throw usageError(`\`--count\` must be a whole number from 1 to ${MAX_VARIANTS} (got \`${String(raw)}\`)`)
  return count
}

/** A file name for the contact sheet of `target`: its characters outside `[A-Za-z0-9._-]` become `_`. */
const sheetName = (target: string) => `${target.replace(/[^A-Za-z0-9._-]/g, '_')}.html`

/**
 * `imagegen variants <manifest>[#<entry>] [--count N]`: N candidates per entry that differ only in `seed`
 * (`candidatesOf`), planned, bill-guarded and generated as `generate` does; one line per candidate on stdout, and a
 * contact sheet in `<derivedCacheDir>/variants/` (not with `--dry-run`). Exit 0 when every candidate is cached, 1 when
 * the bill guard refused, generation is impossible or failed, 2 on a bad target or count.
 */
export async function variantsCommand({ cwd, terminal, onSignal }: CommandContext, project: Project, { paths, flags }: Command): Promise<ExitCode> {
  const json = flags.json === true
  const dryRun = flags['dry-run'] === true
  const count = countOf(flags.count)
  const { options } = project
  const say = (line: string) => void (json || terminal.err(line))
  const target = paths[0]!
  const { file, entries } = await namedEntries(project, cwd, target)

  const candidates = entries.map((entry) => ({ entry, candidates: candidatesOf(entry, count) }))
  const plan = project.plan(candidates.flatMap((c) => c.candidates.map((candidate) => candidate.entry)))
  const pending = await project.pending(plan.missing)
  const guard = new BillGuard(options.maxNewImages)
  const withinLimit = guard.fits(plan.missing)
  const started = performance.now()
  let ran: ReportedRun = { generated: [], failed: [] }
  let sheet: string | undefined

  /** Each candidate's state and file now; writes the contact sheet (not on a dry run); prints the result; returns `code`. */
  const finish = async (code: ExitCode, error?: ImagegenError): Promise<ExitCode> => {
    const made = new Map(ran.generated.map((image) => [image.record.key, image]))
    const failures = new Map(ran.failed.map(({ image, error }) => [image.key, error.message]))
    const cachedByKey = new Map(plan.cached.map((image) => [image.key, image.cached!]))
    const rows = candidates.map(({ entry, candidates }) => ({
      entry,
      candidates: candidates.map(({ number, seed, current, entry: { key } }) => {
        const cached = cachedByKey.get(key) ?? made.get(key)
        const state = cachedByKey.has(key) || made.get(key)?.elsewhere ? 'cached'
          : cached ? 'generated'
          : failures.has(key) ? 'failed'
          : dryRun ? (pending.has(key) ? 'resume' : 'new')
          : pending.has(key) ? 'pending' : 'missing'
        return { number, seed, current, key, state, path: cached?.path, error: failures.get(key) }
      }),
    }))
    if (!dryRun) {
      const dir = join(options.derivedCacheDir, 'variants')
      sheet = join(dir, sheetName(project.display(file) + (entries.length === 1 && entries[0]!.name ? `#${entries[0]!.name}` : '')))
      const html = contactSheet(`imagegen variants ${project.display(file)}`, rows.map(({ entry, candidates }) => ({
        target: forceName(entry),
        prompt: entry.pixels.prompt, width: entry.pixels.width, height: entry.pixels.height,
        candidates: candidates.map((c) => ({ ...c, src: c.path && relative(dir, c.path).split(sep).join('/') })),
      })))
      await mkdir(dirname(sheet), { recursive: true })
      await writeFileAtomic(sheet, html)
    }
    if (json) {
      const all = rows.flatMap((row) => row.candidates)
      terminal.out(JSON.stringify({
        ...jsonHeader('variants', code, project),
        dryRun,
        interrupted: ran.stoppedBy !== undefined,
        count,
        maxNewImages: options.maxNewImages,
        withinLimit,
        summary: {
          entries: entries.length, candidates: all.length, images: plan.images.length, cached: plan.cached.length, toGenerate: plan.missing.length,
          generated: ran.generated.filter((image) => !image.elsewhere).length, failed: ran.failed.length,
        },
        seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
        contactSheet: sheet ? project.display(sheet) : null,
        entries: rows.map(({ entry, candidates }) => ({
          ...jsonEntry(entry),
          key: entry.key,
          seed: entry.pixels.seed,
          candidates: candidates.map(({ number, seed, current, key, state, path, error }) => ({
            number, seed, current, key, state, file: path ? project.display(path) : null, ...(error !== undefined && { error }),
          })),
        })),
        ...(error && { error: forTerminal(error) }),
      }, null, 2))
      return code
    }
    const cells = rows.flatMap(({ entry, candidates }) =>
      candidates.map(({ number, seed, current, state, path }) => [forceName(entry), String(number), `seed ${seed}`, current ? `${state} (current)` : state, path ? project.display(path) : '-']),
    )
    for (const line of table(cells)) terminal.out(line)
    if (sheet) terminal.err(`imagegen: contact sheet: ${project.display(sheet)}`)
    if (error) printError(terminal, forTerminal(error))
    return code
  }

  const limit = `${withinLimit ? 'within' : 'OVER'} the limit of ${plural(options.maxNewImages, 'new image')}`
  const todo = plan.missing.length === 0 ? 'nothing to generate' : `${plan.missing.length} to generate, ${limit}`
  say(`imagegen: ${plural(count, 'candidate')} of ${plural(entries.length, 'entry', 'entries')} in ${project.display(file)} — ${plan.cached.length} cached, ${todo}`)
  if (dryRun) {
    if (!withinLimit && !json) printWarning(terminal, `imagegen: a run would be refused by the bill guard; allow it with \`imagegen variants --max-new ${plan.missing.length}\``)
    if (plan.missing.length > 0 && options.cannotGenerate && !json) printWarning(terminal, `imagegen: a run could not generate them now: ${options.cannotGenerate}`)
    return finish(EXIT.ok)
  }
  if (plan.missing.length > 0) {
    if (options.cannotGenerate) return finish(EXIT.incomplete, missingImagesError(plan.missing.flatMap((image) => image.entries), options.cannotGenerate))
    try {
      guard.take(plan.missing)
    } catch (error) {
      return finish(EXIT.incomplete, error as ImagegenError)
    }
    ran = await generateReported(project, plan.missing, { terminal, onSignal, quiet: json })
  }
  const { generated, failed, stoppedBy } = ran
  const elsewhere = generated.filter((image) => image.elsewhere).length
  const failures = failed.length > 0 ? `, ${failed.length} failed` : ''
  say(`imagegen: ${plural(plan.images.length, 'candidate image')} — ${plan.cached.length + elsewhere} cached, ${generated.length - elsewhere} generated${failures} in ${formatSeconds((performance.now() - started) / 1000)}`)
  if (stoppedBy) {
    const error = new ImagegenError('STOPPED', `interrupted: ${plural(generated.length, 'image')} generated and cached.`, { hint: 'Run `imagegen variants` again to finish; submitted predictions are resumed without paying again.' })
    return finish(stoppedBy === 'SIGINT' ? EXIT.interrupted : EXIT.terminated, error)
  }
  return failed.length > 0 ? finish(EXIT.incomplete, new GenerationError(failed, generated)) : finish(EXIT.ok)
}
