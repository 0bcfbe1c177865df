import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { listCache, readRecord } from '../../core/cache'
import { clip, ImagegenError, plural } from '../../core/errors'
import type { Project } from '../../core/project'
import { readEntries } from '../project'
import { EXIT, formatBytes, table, type CommandContext, type ExitCode } from '../terminal'

interface Unused {
  key: string
  /** File names in the images folder: the record (when there is one) and the image(s). */
  files: string[]
  size: number
  provider: string
  what: string
}

export async function pruneCommand(ctx: CommandContext, project: Project, flags: Record<string, unknown>): Promise<ExitCode> {
  const dryRun = flags['dry-run'] === true
  const anyProvider = flags['any-provider'] === true
  const { terminal } = ctx
  const { imagesDir } = project.cache
  const cacheDir = project.display(project.options.cacheDir)
  const providerName = project.options.provider.name

  const listing = await listCache(imagesDir)
  if (!listing) {
    terminal.err(`imagegen: there is no cache (${cacheDir}/) to prune`)
    return EXIT.ok
  }
  // Always the whole project: an entry is unused only if no manifest anywhere asks for it.
  const files = await project.findManifests()
  if (files.length === 0 && (listing.records.length > 0 || listing.images.size > 0)) {
    throw new ImagegenError('USAGE', `no manifests (*.images.yaml) found under ${project.root}, so every cache entry would count as unused; nothing was deleted.`, {
      hint: 'Run `imagegen prune` from the project root (or where imagegen.config.json is).',
    })
  }
  const used = new Set((await readEntries(project, files)).map((entry) => entry.key))

  const keys = [...new Set([...listing.records, ...listing.images.keys()])].sort()
  const unused: Unused[] = []
  const otherProvider: Unused[] = []
  let kept = 0
  for (const key of keys) {
    if (used.has(key)) {
      kept++
      continue
    }
    const hasRecord = listing.records.includes(key)
    const names = [...(hasRecord ? [`${key}.json`] : []), ...(listing.images.get(key) ?? [])]
    const sizes = await Promise.all(names.map((name) => stat(join(imagesDir, name)).then((s) => s.size, () => 0)))
    const read = hasRecord ? await readRecord(imagesDir, key) : undefined
    const entry: Unused = {
      key,
      files: names,
      size: sizes.reduce((a, b) => a + b, 0),
      provider: read?.ok ? read.record.provider : '?',
      what: read === undefined ? '(image without a record)' : read.ok ? clip(read.record.spec.prompt, 60) : `(${read.problem})`,
    }
    // A provider switch makes every entry of the other provider unused; they may be paid for, so they stay unless asked.
    if (read?.ok && read.record.provider !== providerName && !anyProvider) otherProvider.push(entry)
    else unused.push(entry)
  }

  for (const entry of unused) {
    // The record goes first: without it the entry no longer exists, whatever happens next.
    if (!dryRun) for (const name of entry.files) await rm(join(imagesDir, name), { force: true })
  }
  const rows = unused.map((e) => [dryRun ? 'would remove' : 'removed', e.key.slice(0, 12), formatBytes(e.size), e.provider, e.what])
  for (const line of table(rows)) terminal.out(line)

  const total = formatBytes(unused.reduce((sum, e) => sum + e.size, 0))
  const count = plural(unused.length, 'unused entry', 'unused entries')
  terminal.err(
    dryRun
      ? `imagegen: ${count} (${total}) would be removed from ${cacheDir}/; ${kept} in use. Run \`imagegen prune\` to delete ${unused.length === 1 ? 'it' : 'them'}.`
      : `imagegen: removed ${count} (${total}) from ${cacheDir}/; kept ${kept} in use`,
  )
  if (otherProvider.length > 0) {
    const providers = [...new Set(otherProvider.map((e) => `\`${e.provider}\``))].join(', ')
    terminal.err(
      `imagegen: kept ${plural(otherProvider.length, 'unused entry', 'unused entries')} made by ${providers}, while the configured provider is \`${providerName}\`. ` +
        'If the plugin uses another provider, set `provider` in imagegen.config.json so both agree; to delete them anyway, pass `--any-provider`.',
    )
  }
  return EXIT.ok
}
