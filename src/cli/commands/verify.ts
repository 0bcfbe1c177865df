import { DamagedEntryError, listCache } from '../../core/cache'
import { forTerminal, ImagegenError, plural } from '../../core/errors'
import type { Project } from '../../core/project'
import type { Command } from '../args'
import { jsonHeader } from '../json'
import { EXIT, printError, printWarning, table, type CommandContext, type ExitCode } from '../terminal'

export async function verifyCommand({ terminal }: CommandContext, project: Project, { flags }: Command): Promise<ExitCode> {
  const json = flags.json === true
  const { imagesDir } = project.cache
  const cacheDir = project.display(project.options.cacheDir)
  const listing = await listCache(imagesDir)
  const records = listing?.records ?? []
  const images = listing?.images ?? new Map<string, string[]>()

  /** Each record's damage, or nothing when intact (the rules are the cache's, as every build applies them). */
  const checks = records.map((key) => {
    try {
      project.cache.lookup(key, { rehash: true })
    } catch (error) {
      if (error instanceof DamagedEntryError) return error
      throw error
    }
  })
  const damaged = checks.filter((check) => check !== undefined)
  const orphans = [...images.keys()].filter((key) => !records.includes(key))
  const code = damaged.length === 0 ? EXIT.ok : EXIT.incomplete

  if (json) {
    terminal.out(JSON.stringify({
      ...jsonHeader('verify', code, project),
      summary: { entries: checks.length, intact: checks.length - damaged.length, damaged: damaged.length, withoutRecord: orphans.length },
      damaged: damaged.map(({ key, path, problem, lfsPointer }) => ({ key, file: project.display(path), problem, lfsPointer })),
      withoutRecord: orphans,
    }, null, 2))
    return code
  }
  if (records.length === 0 && images.size === 0) {
    terminal.err(`imagegen: the cache (${cacheDir}/) holds no images; nothing to verify`)
    return EXIT.ok
  }
  for (const line of table(damaged.map((error) => ['damaged', project.display(error.path), error.problem]))) terminal.out(line)
  terminal.err(`imagegen: verified ${plural(checks.length, 'cache entry', 'cache entries')} — ${checks.length - damaged.length} intact, ${damaged.length} damaged`)
  if (orphans.length > 0) {
    printWarning(terminal, `imagegen: ${plural(orphans.length, 'image file has', 'image files have')} no record (not used by any build); \`imagegen prune\` removes those no manifest asks for`)
  }
  if (damaged.length === 0) return EXIT.ok
  const them = damaged.length === 1 ? 'it' : 'them'
  const lfs = damaged.some((error) => error.lfsPointer) ? 'Fetch the Git LFS pointers with `git lfs pull`. ' : ''
  const hint = `${lfs}Restore ${them} from git (\`git checkout -- ${cacheDir}\`), or run \`imagegen generate --force <manifest>#<entry>\` to pay for ${them} again.`
  printError(terminal, forTerminal(new ImagegenError('IO', `${plural(damaged.length, 'cache entry is', 'cache entries are')} damaged.`, { hint })))
  return code
}
