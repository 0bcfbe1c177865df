import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { listCache, readRecord } from '../../core/cache'
import { clip, ImagegenError, plural } from '../../core/errors'
import type { Project } from '../../core/project'
import type { Command } from '../args'
import { readManifests } from '../project'
import { EXIT, table, type CommandContext, type ExitCode } from '../terminal'

export async function pruneCommand({ terminal }: CommandContext, project: Project, { flags }: Command): Promise<ExitCode> {
  const dryRun = flags['dry-run'] === true
  const { imagesDir } = project.cache
  const cacheDir = project.display(project.options.cacheDir)
  const provider = project.options.provider.name

  const listing = await listCache(imagesDir)
  if (!listing) {
    terminal.err(`imagegen: there is no cache (${cacheDir}/) to prune`)
    return EXIT.ok
  }
  // Always the whole project: an entry is unused only if no manifest anywhere asks for it.
  const { files, entries } = await readManifests(project, project.root, [])
  if (files.length === 0 && (listing.records.length > 0 || listing.images.size > 0)) {
    throw new ImagegenError('USAGE', `no manifests (*.images.yaml) found under ${project.root}, so every cache entry would count as unused; nothing was deleted.`, {
      hint: 'Run `imagegen prune` from the project root (or where imagegen.config.json is).',
    })
  }
  const used = new Set(entries.map((entry) => entry.key))
  const keys = [...new Set([...listing.records, ...listing.images.keys()])].sort()
  const unused = keys.filter((key) => !used.has(key))

  const rows: string[][] = []
  let freed = 0
  const otherProviders: string[] = []
  for (const key of unused) {
    const read = listing.records.includes(key) ? readRecord(imagesDir, key) : undefined
    // A provider switch makes every entry of the other provider unused; they may be paid for, so they stay unless asked.
    if (read?.ok && read.record.provider !== provider && flags['any-provider'] !== true) {
      otherProviders.push(read.record.provider)
      continue
    }
    // The record goes first: without it the entry no longer exists, whatever happens next.
    const names = [...(read ? [`${key}.json`] : []), ...(listing.images.get(key) ?? [])]
    let size = 0
    for (const name of names) {
      size += await stat(join(imagesDir, name)).then((info) => info.size, () => 0)
      if (!dryRun) await rm(join(imagesDir, name), { force: true })
    }
    freed += size
    const what = read === undefined ? '(image without a record)' : read.ok ? clip(read.record.spec.prompt, 60) : `(${read.problem})`
    rows.push([dryRun ? 'would remove' : 'removed', key.slice(0, 12), formatBytes(size), read?.ok ? read.record.provider : '?', what])
  }
  for (const line of table(rows)) terminal.out(line)

  const count = `${plural(rows.length, 'unused entry', 'unused entries')} (${formatBytes(freed)})`
  const kept = `${keys.length - unused.length} in use`
  const them = rows.length === 1 ? 'it' : 'them'
  if (!dryRun) terminal.err(`imagegen: removed ${count} from ${cacheDir}/; kept ${kept}`)
  else terminal.err(`imagegen: ${count} would be removed from ${cacheDir}/; ${kept}. Run \`imagegen prune\` to delete ${them}.`)
  if (otherProviders.length > 0) {
    const providers = [...new Set(otherProviders)].map((name) => `\`${name}\``).join(', ')
    terminal.err(
      `imagegen: kept ${plural(otherProviders.length, 'unused entry', 'unused entries')} made by ${providers}, while the configured provider is \`${provider}\`. ` +
        'If the plugin uses another provider, set `provider` in imagegen.config.json so both agree; to delete them anyway, pass `--any-provider`.',
    )
  }
  return EXIT.ok
}

/** `812 B`, `45.1 kB`, `3.2 MB`. */
const formatBytes = (bytes: number) =>
  bytes < 1000 ? `${bytes} B` : bytes < 1_000_000 ? `${(bytes / 1000).toFixed(1)} kB` : `${(bytes / 1_000_000).toFixed(1)} MB`
