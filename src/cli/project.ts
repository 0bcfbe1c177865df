import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { CONFIG_FILE, findProjectRoot } from '../config'
import { ImageCache } from '../core/cache'
import { findManifests } from '../core/discover'
import { entryLabel, keyEntries, type KeyedEntry } from '../core/entries'
import { displayPath as showPath, ImagegenError, ManifestError } from '../core/errors'
import { MANIFEST_PATTERN, parseManifest } from '../core/manifest'
import { resolveOptions, type Options, type ResolvedOptions } from '../options'
import { CliError, EXIT, plural, usageError } from './terminal'

/** What every command knows: the root, the options the plugin would use there, the cache. */
export interface Project {
  root: string
  /** Absolute path of imagegen.config.json, when there is one. */
  configFile?: string
  options: ResolvedOptions
  cache: ImageCache
}

/**
 * Finds the root from `cwd` and resolves the options exactly as the plugin does, with the
 * command's flags (`overrides`) in the place of the plugin's options.
 */
export function openProject(cwd: string, overrides: Options = {}, env: NodeJS.ProcessEnv = process.env): Project {
  const root = findProjectRoot(cwd)
  let options: ResolvedOptions
  try {
    options = resolveOptions(overrides, { root, env })
  } catch (error) {
    if (error instanceof ImagegenError) throw new CliError(error.message, EXIT.usage)
    throw error
  }
  const configFile = join(root, CONFIG_FILE)
  return { root, configFile: existsSync(configFile) ? configFile : undefined, options, cache: new ImageCache(options.cacheDir) }
}

/** A path as messages show it: relative to the root, with forward slashes. */
export function displayPath(project: Project, file: string): string {
  return showPath(project.root, file)
}

/**
 * The manifests under `paths` (folders are searched, manifest files taken as they are),
 * relative to `cwd`; the whole root when `paths` is empty. Skips the cache folder.
 */
export async function manifestFiles(project: Project, cwd: string, paths: readonly string[]): Promise<string[]> {
  const skip = new Set([project.options.cacheDir])
  const found = new Set<string>()
  for (const path of paths.length > 0 ? paths : [cwd]) {
    const absolute = resolve(cwd, path)
    let info
    try {
      info = await stat(absolute)
    } catch {
      throw usageError(`\`${path}\` does not exist`)
    }
    if (info.isDirectory()) {
      for (const file of await findManifests(absolute, skip)) found.add(file)
    } else if (MANIFEST_PATTERN.test(absolute)) {
      found.add(absolute)
    } else {
      throw usageError(`\`${path}\` is not a folder or a manifest (*.images.yaml)`)
    }
  }
  return [...found].sort()
}

/**
 * Parses and keys every manifest. Problems in any of them end the command with exit 2,
 * all of them reported at once: a command never acts on half a project.
 */
export async function readEntries(project: Project, files: readonly string[]): Promise<KeyedEntry[]> {
  const problems: string[] = []
  const entries = await Promise.all(
    files.map(async (file) => {
      const display = displayPath(project, file)
      try {
        const manifest = parseManifest(await readFile(file), display)
        return await keyEntries(manifest, { manifestPath: file, root: project.root, provider: project.options.provider.name })
      } catch (error) {
        if (error instanceof ManifestError) problems.push(error.message)
        else if ((error as NodeJS.ErrnoException).code) problems.push(`[imagegen] cannot read ${display}: ${(error as NodeJS.ErrnoException).code}`)
        else throw error
        return []
      }
    }),
  )
  if (problems.length > 0) {
    const intro = problems.length === 1 ? '' : `[imagegen] ${plural(problems.length, 'manifest')} have problems; nothing was done.\n`
    throw new CliError(`${intro}${problems.join('\n')}`, EXIT.usage)
  }
  return entries.flat()
}

/** An entry as one line of text: `art.images.yaml:5:3 \`banner\``. */
export { entryLabel }
