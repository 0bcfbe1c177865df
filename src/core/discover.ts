import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { MANIFEST_PATTERN } from './manifest'

/** Folders that never hold a project's own manifests. */
export const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist', 'build', 'out', '.output', '.next', '.nuxt', '.svelte-kit', '.vite', 'coverage'])

/** Every manifest under `dir`, sorted, skipping dependencies, VCS and build output. */
export async function findManifests(dir: string, skip: ReadonlySet<string> = new Set()): Promise<string[]> {
  const found: string[] = []
  async function walk(current: string): Promise<void> {
    let entries
    try {
      entries = await readdir(current, { withFileTypes: true })
    } catch {
      return
    }
    await Promise.all(
      entries.map(async (entry) => {
        const path = join(current, entry.name)
        if (entry.isDirectory()) {
          if (!SKIPPED_DIRS.has(entry.name) && !skip.has(path)) await walk(path)
        } else if (entry.isFile() && MANIFEST_PATTERN.test(entry.name)) {
          found.push(path)
        }
      }),
    )
  }
  await walk(dir)
  return found.sort()
}
