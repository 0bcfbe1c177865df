import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from '../../core/atomic'
import { DamagedEntryError } from '../../core/cache'
import { forceName } from '../../core/plan'
import type { Project } from '../../core/project'
import { MAX_SEED, pinSeed } from '../../core/variants'
import type { Command } from '../args'
import { jsonEntry, jsonHeader } from '../json'
import { EXIT, usageError, type CommandContext, type ExitCode } from '../terminal'
import { namedEntries } from './variants'

/** The largest seed a manifest takes (`seed` in schema.ts). */

/**
 * `imagegen pick <manifest>[#<entry>] <seed>`: writes `seed: <seed>` into that entry (`pinSeed`: comments, order and
 * formatting kept) and prints the old and the new seed, and whether the new image is cached. Exit 0; 2 on a bad
 * manifest, entry or seed (a whole number from 0 to 4294967295), or a target naming several entries.
 */
export async function pickCommand({ cwd, terminal }: CommandContext, project: Project, { paths, flags }: Command): Promise<ExitCode> {
  const [target, raw] = paths as [string, string]
  const seed = /^\d{1,10}$/.test(raw) ? Number(raw) : Number.NaN
  if (!(seed <= MAX_SEED)) throw usageError(`the seed must be a whole number from 0 to ${MAX_SEED} (got \`${raw}\`)`)
  const { file, entries } = await namedEntries(project, cwd, target)
  if (entries.length > 1) throw usageError(`\`${target}\` holds ${entries.length} images: name one as \`${target}#<entry>\` (${entries.map((e) => e.name).join(', ')})`)
  const before = entries[0]!
  const text = await readFile(file, 'utf8')
  const edited = pinSeed(text, before.name, seed)
  if (edited !== text) await writeFileAtomic(file, edited)
  const after = (await project.read(file)).entries.find((entry) => entry.name === before.name)!
  let cached
  let damaged: DamagedEntryError | undefined
  try {
    cached = project.cache.lookup(after.key)
  } catch (error) {
    if (!(error instanceof DamagedEntryError)) throw error
    damaged = error
  }
  const old = before.spec.seed === undefined ? `${before.pixels.seed} (derived)` : String(before.pixels.seed)

  if (flags.json === true) {
    terminal.out(JSON.stringify({
      ...jsonHeader('pick', EXIT.ok, project),
      entry: jsonEntry(after),
      previousSeed: before.pixels.seed,
      previousSeedDerived: before.spec.seed === undefined,
      seed,
      changed: edited !== text,
      key: after.key,
      cached: cached !== undefined,
      file: cached ? project.display(cached.path) : null,
    }, null, 2))
    return EXIT.ok
  }
  terminal.out(`${forceName(after)}: seed ${old} → ${seed}`)
  const where = project.options.provider.name === 'atlas' ? ' where ATLASCLOUD_API_KEY is set' : ''
  terminal.err(
    damaged
      ? `imagegen: its cached image is damaged (${damaged.problem}): see \`imagegen verify\``
      : cached
      ? `imagegen: its image is cached (${project.display(cached.path)}): the next build makes no request`
      : `imagegen: its image is not cached yet: the next build or \`imagegen generate\`${where} will generate it`,
  )
  return EXIT.ok
}
