import { planImages } from '../../core/scheduler'
import { jsonEntry, JSON_VERSION, type StatusJson } from '../json'
import { displayPath, manifestFiles, openProject, readEntries } from '../project'
import { EXIT, plural, table, type ExitCode } from '../terminal'
import type { CommandContext } from './context'

export async function statusCommand(ctx: CommandContext, paths: string[], flags: Record<string, unknown>): Promise<ExitCode> {
  const json = flags.json === true
  const { terminal } = ctx
  const project = openProject(ctx.cwd, {}, ctx.env)
  const files = await manifestFiles(project, ctx.cwd, paths)
  const entries = await readEntries(project, files)
  const plan = await planImages(entries, project.cache)
  const cachedByKey = new Map(plan.cached.map((image) => [image.key, image.cached!]))
  const pending = new Map(
    await Promise.all(plan.missing.map(async (image) => [image.key, await project.cache.readPending(image.key)] as const)),
  )

  const rows = entries.map((entry) => {
    const cached = cachedByKey.get(entry.key)
    const journal = pending.get(entry.key)
    return {
      entry,
      cached,
      journal: journal?.provider === project.options.provider.name ? journal : undefined,
    }
  })
  const code = plan.missing.length > 0 ? EXIT.incomplete : EXIT.ok

  if (json) {
    const result: StatusJson = {
      version: JSON_VERSION,
      command: 'status',
      ok: code === EXIT.ok,
      exitCode: code,
      root: project.root,
      cacheDir: displayPath(project, project.options.cacheDir),
      provider: project.options.provider.name,
      summary: { manifests: files.length, entries: entries.length, images: plan.images.length, cached: plan.cached.length, missing: plan.missing.length },
      entries: rows.map(({ entry, cached, journal }) => ({
        ...jsonEntry(entry),
        key: entry.key,
        state: cached ? 'cached' : 'missing',
        file: cached ? displayPath(project, cached.path) : null,
        pendingPredictionId: journal?.predictionId ?? null,
      })),
    }
    terminal.out(JSON.stringify(result, null, 2))
    return code
  }

  const lines = table(
    rows.map(({ entry, cached, journal }) => {
      const { file, line, column } = entry.location
      const state = cached ? 'cached' : journal ? `missing (submitted as ${journal.predictionId}; \`imagegen generate\` resumes it)` : 'missing'
      return [`${file}:${line}:${column}`, entry.name ?? '-', entry.key.slice(0, 12), state]
    }),
  )
  for (const line of lines) terminal.out(line)

  terminal.err(
    files.length === 0
      ? `imagegen: no manifests (*.images.yaml) under ${paths.length ? paths.join(', ') : 'the current folder'}`
      : `imagegen: ${plural(entries.length, 'entry', 'entries')} (${plural(plan.images.length, 'image')}) in ${plural(files.length, 'manifest')} — ` +
          `${plan.cached.length} cached, ${plan.missing.length} missing`,
  )
  if (code !== EXIT.ok) {
    terminal.err(
      `[imagegen] ${plural(plan.missing.length, 'image is', 'images are')} not in the cache: run \`imagegen generate\`${project.options.provider.name === 'atlas' ? ' where ATLASCLOUD_API_KEY is set' : ''}, ` +
        `then commit ${displayPath(project, project.options.cacheDir)}/.`,
    )
  }
  return code
}
