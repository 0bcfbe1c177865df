import { DamagedEntryError, listCache } from '../../core/cache'
import { forTerminal, ImagegenError, plural } from '../../core/errors'
import type { Project } from '../../core/project'
import { EXIT, table, type CommandContext, type ExitCode } from '../terminal'

export async function verifyCommand({ terminal }: CommandContext, project: Project): Promise<ExitCode> {
  const { imagesDir } = project.cache
  const cacheDir = project.display(project.options.cacheDir)
  const listing = await listCache(imagesDir)
  if (!listing || (listing.records.length === 0 && listing.images.size === 0)) {
    terminal.err(`imagegen: the cache (${cacheDir}/) holds no images; nothing to verify`)
    return EXIT.ok
  }

  /** Each record's damage, or nothing when intact (the rules are the cache's, as every build applies them). */
  const checks = listing.records.map((key) => {
    try {
      project.cache.lookup(key, { rehash: true })
    } catch (error) {
      if (error instanceof DamagedEntryError) return error
      throw error
    }
  })
  const damaged = checks.filter((check) => check !== undefined)
  for (const line of table(damaged.map((error) => ['damaged', project.display(error.path), error.problem]))) terminal.out(line)

  const orphans = [...listing.images.keys()].filter((key) => !listing.records.includes(key))
  terminal.err(`imagegen: verified ${plural(checks.length, 'cache entry', 'cache entries')} — ${checks.length - damaged.length} intact, ${damaged.length} damaged`)
  if (orphans.length > 0) {
    terminal.err(`imagegen: ${plural(orphans.length, 'image file has', 'image files have')} no record (not used by any build); \`imagegen prune\` removes those no manifest asks for`)
  }
  if (damaged.length === 0) return EXIT.ok
  const them = damaged.length === 1 ? 'it' : 'them'
  const lfs = damaged.some((error) => error.lfsPointer) ? 'Fetch the Git LFS pointers with `git lfs pull`. ' : ''
  const hint = `${lfs}Restore ${them} from git (\`git checkout -- ${cacheDir}\`), or run \`imagegen generate --force <manifest>#<entry>\` to pay for ${them} again.`
  terminal.err(forTerminal(new ImagegenError('IO', `${plural(damaged.length, 'cache entry is', 'cache entries are')} damaged.`, { hint })))
  return EXIT.incomplete
}
