import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { listCache, readRecord } from '../../core/cache'
import { ImagegenError, plural } from '../../core/errors'
import type { Project } from '../../core/project'
import type { Command } from '../args'
import { jsonHeader } from '../json'
import { readManifests } from '../project'
import { clipColumns, EXIT, printWarning, table, type CommandContext, type ExitCode } from '../terminal'

export async function pruneCommand({ terminal }: CommandContext, project: Project, { flags }: Command): Promise<ExitCode> {
  const dryRun = flags['dry-run'] === true
  const json = flags.json === true
  const { imagesDir } = project.cache
  const cacheDir = project.display(project.options.cacheDir)
  const provider = project.options.provider.name

  const removed: { key: string; bytes: number; provider: string | null; prompt: string | null }[] = []
  const kept: { key: string; provider: string }[] = []
  let inUse = 0
  /** The JSON result (removed: what was, or with --dry-run would be, deleted; kept: unused entries of another provider). */
  const result = () => {
    const bytes = removed.reduce((sum, entry) => sum + entry.bytes, 0)
    const summary = { entries: inUse + removed.length + kept.length, inUse, removed: removed.length, bytes, kept: kept.length }
    terminal.out(JSON.stringify({ ...jsonHeader('prune', EXIT.ok, project), dryRun, summary, removed, kept }, null, 2))
    return EXIT.ok
  }

  const listing = await listCache(imagesDir)
  if (!listing) {
    if (json) return result()
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
  inUse = keys.length - unused.length

  const rows: string[][] = []
  for (const key of unused) {
    const read = listing.records.includes(key) ? readRecord(imagesDir, key) : undefined
    // A provider switch makes every entry of the other provider unused; they may be paid for, so they stay unless asked.
    if (read?.ok && read.record.provider !== provider && flags['any-provider'] !== true) {
      kept.push({ key, provider: read.record.provider })
      continue
    }
    // The record goes first: without it the entry no longer exists, whatever happens next.
    const names = [...(read ? [`${key}.json`] : []), ...(listing.images.get(key) ?? [])]
    let size = 0
    for (const name of names) {
      size += await stat(join(imagesDir, name)).then((info) => info.size, () => 0)
      if (!dryRun) await rm(join(imagesDir, name), { force: true })
    }
    removed.push({ key, bytes: size, provider: read?.ok ? read.record.provider : null, prompt: read?.ok ? read.record.spec.prompt : null })
    const what = read === undefined ? '(image without a record)' : read.ok ? clipColumns(read.record.spec.prompt, 60) : `(${read.problem})`
    rows.push([dryRun ? 'would remove' : 'removed', key.slice(0, 12), formatBytes(size), read?.ok ? read.record.provider : '?', what])
  }
  if (json) return result()
  for (const line of table(rows)) terminal.out(line)

  const freed = removed.reduce((sum, entry) => sum + entry.bytes, 0)
  const count = `${plural(rows.length, 'unused entry', 'unused entries')} (${formatBytes(freed)})`
  const them = rows.length === 1 ? 'it' : 'them'
  if (!dryRun) terminal.err(`imagegen: removed ${count} from ${cacheDir}/; kept ${inUse} in use`)
  else terminal.err(`imagegen: ${count} would be removed from ${cacheDir}/; ${inUse} in use. Run \`imagegen prune\` to delete ${them}.`)
  if (kept.length > 0) {
    const providers = [...new Set(kept.map((entry) => entry.provider))].map((name) => `\`${name}\``).join(', ')
    printWarning(
      terminal,
      `imagegen: kept ${plural(kept.length, 'unused entry', 'unused entries')} made by ${providers}, while the configured provider is \`${provider}\`. ` +
        'If the plugin uses another provider, set `provider` in imagegen.config.json so both agree; to delete them anyway, pass `--any-provider`.',
    )
  }
  return EXIT.ok
}

/** `812 B`, `45.1 kB`, `3.2 MB`. */
const formatBytes = (bytes: number) =>
  bytes < 1000 ? `${bytes} B` : bytes < 1_000_000 ? `${(bytes / 1000).toFixed(1)} kB` : `${(bytes / 1_000_000).toFixed(1)} MB`
