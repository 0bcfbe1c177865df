/**
 * `imagegen.config.json`: the settings the plugin and the CLI share, read from the project
 * root. JSON rather than JavaScript because the plugin resolves its options synchronously,
 * because a data file runs no code in CI, and because nothing in it (cache, provider name,
 * limits) needs code. The API key is refused: this file is committed.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { didYouMean } from './core/did-you-mean'
import { ImagegenError } from './core/errors'
import type { Options } from './options'

export const CONFIG_FILE = 'imagegen.config.json'

/** The options a config file may set: the plugin's, less the root (the file's folder is the root) and the key. */
export type FileOptions = Omit<Options, 'root' | 'apiKey' | 'provider'> & { provider?: 'atlas' | 'placeholder' }

const FILE_KEYS = [
  'cacheDir',
  'provider',
  'mode',
  'concurrency',
  'maxNewImages',
  'baseURL',
  'timeoutMs',
  'pollIntervalMs',
  'maxPollIntervalMs',
  'requestTimeoutMs',
  'dts',
  'derivedCacheDir',
] as const satisfies readonly (keyof FileOptions)[]

// Every option a file may set is listed above: adding one to `Options` without listing it fails here.
const everyOptionListed: Exclude<keyof FileOptions, (typeof FILE_KEYS)[number]> extends never ? true : never = true
void everyOptionListed

export interface ConfigFile {
  /** Absolute path of the file. */
  path: string
  /** Its options, checked for shape here; their values are validated by `resolveOptions`. */
  options: FileOptions
}

/** Reads `imagegen.config.json` in `root`, or returns undefined when there is none. */
export function readConfigFile(root: string): ConfigFile | undefined {
  const path = join(root, CONFIG_FILE)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ImagegenError(`cannot read ${CONFIG_FILE}: ${(error as NodeJS.ErrnoException).code ?? error}`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new ImagegenError(`${CONFIG_FILE} is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ImagegenError(`${CONFIG_FILE} must hold a JSON object of options, like { "maxNewImages": 50 }`)
  }
  const problems: string[] = []
  for (const key of Object.keys(data)) {
    if (key === '$schema') continue
    if (key === 'apiKey') {
      problems.push('`apiKey` must not be in the config file, which is committed: set the ATLASCLOUD_API_KEY environment variable instead')
    } else if (key === 'root') {
      problems.push('`root` cannot be set in the config file: the folder that holds the file is the root')
    } else if (!(FILE_KEYS as readonly string[]).includes(key)) {
      const guess = didYouMean(key, FILE_KEYS)
      problems.push(`unknown option \`${key}\`: ${guess ? `did you mean \`${guess}\`?` : `known options: ${FILE_KEYS.join(', ')}`}`)
    }
  }
  const provider = (data as Record<string, unknown>).provider
  if (provider !== undefined && provider !== 'atlas' && provider !== 'placeholder') {
    problems.push(`\`provider\` must be "atlas" or "placeholder" (got ${JSON.stringify(provider)}); a custom provider object can only be given in the plugin options`)
  }
  if (problems.length > 0) throw new ImagegenError(`${CONFIG_FILE}: ${problems.join('; ')}`)
  const { $schema: _, ...options } = data as FileOptions & { $schema?: unknown }
  return { path, options }
}

/**
 * The project root for a command run in `cwd`: the nearest folder, from `cwd` up, that holds
 * `imagegen.config.json`, else the project's edge — the first folder with a `package.json` or
 * `.git` — where the plugin's root usually is too. So `imagegen generate` run from `src/` uses the
 * project's cache instead of starting (and paying for) a second one. Without either, `cwd`.
 */
export function findProjectRoot(cwd: string): string {
  for (let dir = cwd; ; dir = dirname(dir)) {
    if (existsSync(join(dir, CONFIG_FILE))) return dir
    if (existsSync(join(dir, 'package.json')) || existsSync(join(dir, '.git'))) return dir
    if (dirname(dir) === dir) return cwd
  }
}
