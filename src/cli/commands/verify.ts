import { join } from 'node:path'
import pLimit from 'p-limit'
import { hashFile, listCache, readRecord } from '../../core/cache'
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

  const limit = pLimit(8) // files hashed at once
  /** Each record's damage: the file to show and what is wrong with it, or nothing when intact. */
  const checks = await Promise.all(
    listing.records.map((key) =>
      limit(async (): Promise<string[] | undefined> => {
        const read = await readRecord(imagesDir, key)
        if (!read.ok) return [project.display(join(imagesDir, `${key}.json`)), read.problem]
        const { size, sha256, file } = read.record
        const path = join(imagesDir, file)
        const shown = project.display(path)
        try {
          const actual = await hashFile(path)
          if (actual.size !== size) return [shown, `${actual.size} bytes, the record says ${size}`]
          if (actual.sha256 !== sha256) return [shown, `SHA-256 ${actual.sha256.slice(0, 12)}… differs from the recorded ${sha256.slice(0, 12)}…`]
        } catch (error) {
          const { code } = error as NodeJS.ErrnoException
          return [shown, code === 'ENOENT' ? 'the image file is missing' : `the image cannot be read (${code})`]
        }
      }),
    ),
  )
  const damaged = checks.filter((check) => check !== undefined)
  for (const line of table(damaged.map((check) => ['damaged', ...check]))) terminal.out(line)

  const orphans = [...listing.images.keys()].filter((key) => !listing.records.includes(key))
  terminal.err(`imagegen: verified ${plural(checks.length, 'cache entry', 'cache entries')} — ${checks.length - damaged.length} intact, ${damaged.length} damaged`)
  if (orphans.length > 0) {
    terminal.err(`imagegen: ${plural(orphans.length, 'image file has', 'image files have')} no record (not used by any build); \`imagegen prune\` removes those no manifest asks for`)
  }
  if (damaged.length === 0) return EXIT.ok
  const them = damaged.length === 1 ? 'it' : 'them'
  const hint = `Restore ${them} from git (\`git checkout -- ${cacheDir}\`), or delete the image and its record and run \`imagegen generate\` to make ${them} again.`
  terminal.err(forTerminal(new ImagegenError('IO', `${plural(damaged.length, 'cache entry is', 'cache entries are')} damaged.`, { hint })))
  return EXIT.incomplete
}
