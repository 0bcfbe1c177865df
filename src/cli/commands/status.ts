import { forTerminal, ImagegenError, plural } from '../../core/errors'
import type { Project } from '../../core/project'
import type { Command } from '../args'
import { jsonEntry, jsonHeader } from '../json'
import { noManifests, readManifests } from '../project'
import { EXIT, printError, table, type CommandContext, type ExitCode } from '../terminal'

export async function statusCommand({ cwd, terminal }: CommandContext, project: Project, { paths, flags }: Command): Promise<ExitCode> {
  const { files, entries } = await readManifests(project, cwd, paths)
  const plan = project.plan(entries)
  const cachedByKey = new Map(plan.cached.map((image) => [image.key, image.cached!]))
  const pending = await project.pending(plan.missing)
  const rows = entries.map((entry) => ({ entry, cached: cachedByKey.get(entry.key), journal: pending.get(entry.key) }))
  const code = plan.missing.length > 0 ? EXIT.incomplete : EXIT.ok

  if (flags.json === true) {
    terminal.out(JSON.stringify({
      ...jsonHeader('status', code, project),
      summary: { manifests: files.length, entries: entries.length, images: plan.images.length, cached: plan.cached.length, missing: plan.missing.length },
      entries: rows.map(({ entry, cached, journal }) => ({
        ...jsonEntry(entry),
        key: entry.key,
        state: cached ? 'cached' : 'missing',
        file: cached ? project.display(cached.path) : null,
        pendingPredictionId: journal?.state.id ?? null,
      })),
    }, null, 2))
    return code
  }

  const cells = rows.map(({ entry, cached, journal }) => {
    const state = cached ? 'cached' : journal ? `missing (submitted as ${journal.state.id}; \`imagegen generate\` resumes it)` : 'missing'
    const { file, line, column } = entry.location
    return [`${file}:${line}:${column}`, entry.name ?? '-', entry.key.slice(0, 12), state]
  })
  for (const line of table(cells)) terminal.out(line)
  const counts = `${plural(entries.length, 'entry', 'entries')} (${plural(plan.images.length, 'image')}) in ${plural(files.length, 'manifest')}`
  terminal.err(files.length === 0 ? noManifests(paths) : `imagegen: ${counts} — ${plan.cached.length} cached, ${plan.missing.length} missing`)
  if (code !== EXIT.ok) {
    const where = project.options.provider.name === 'atlas' ? ' where ATLASCLOUD_API_KEY is set' : ''
    const hint = `run \`imagegen generate\`${where}, then commit ${project.display(project.options.cacheDir)}/.`
    printError(terminal, forTerminal(new ImagegenError('MISSING', `${plural(plan.missing.length, 'image is', 'images are')} not in the cache:`, { hint })))
  }
  return code
}
