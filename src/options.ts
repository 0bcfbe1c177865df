/**
 * The options, in one place: one zod schema for the plugin's options, from which the schema of
 * `imagegen.config.json` is derived and against which CLI flags are checked; the environment is
 * read here and nowhere else; the project root is found here for the plugin and the CLI alike.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path'
import type { FilterPattern } from 'unplugin'
import * as z from 'zod/mini'
import { didYouMean } from './core/did-you-mean'
import { mustBe } from './core/schema'
import { ImagegenError } from './core/errors'
import { lazyProvider } from './providers/lazy'
import { createPlaceholderProvider } from './providers/placeholder'
import type { Provider } from './providers/types'

/** The Atlas provider's name (`createAtlasProvider().name`), part of every key it makes. */
export const ATLAS_PROVIDER = 'atlas'

export interface Options {
  /**
   * The project root: the cache folder and the paths in messages are relative to it, and reference images must lie inside it.
   * @default the nearest folder, from the bundler's root (the CLI: the current folder) up, with `imagegen.config.json`, a `package.json` or `.git`
   */
  root?: string
  /** Where generated images and their records are kept, relative to the root. Commit it. @default '.imagegen' */
  cacheDir?: string
  /** The Atlas Cloud API key. Prefer the variable: a key in a config file ends up in git. @default process.env.ATLASCLOUD_API_KEY */
  apiKey?: string
  /** The Atlas Cloud API base URL. @default process.env.ATLASCLOUD_BASE_URL ?? 'https://api.atlascloud.ai' */
  baseURL?: string
  /**
   * Who makes the images: `'atlas'` (FLUX.1 [schnell] on Atlas Cloud), `'placeholder'` (deterministic local drawings, no key,
   * no network), or your own `Provider`. The provider is part of every image's key. @default 'atlas'
   */
  provider?: 'atlas' | 'placeholder' | Provider
  /**
   * `'auto'` generates missing images when it can; `'offline'` never touches the network (missing images then fail a build,
   * or show a placeholder in dev). @default 'offline' when IMAGEGEN_OFFLINE=1, else 'auto'
   */
  mode?: 'auto' | 'offline'
  /** Predictions that run at once, at most (fewer for a while when the service answers 429). @default 4 */
  concurrency?: number
  /** The most new images one build, dev server or CLI run may generate; more fails before anything is submitted. @default 25 */
  maxNewImages?: number
  /** How long one image may take, from submit to downloaded file, in milliseconds. @default 300000 */
  timeoutMs?: number
  /**
   * Unset (the default): polls learn when predictions of the model typically end and poll densely around then (every
   * 250 ms at most, every `maxPollIntervalMs` at least). Set: a fixed schedule, the first poll after this many
   * milliseconds, then ×1.5 up to `maxPollIntervalMs`. @default undefined
   */
  pollIntervalMs?: number
  /** The longest wait between two polls of one prediction, in milliseconds. @default 5000 */
  maxPollIntervalMs?: number
  /** How long one HTTP request to the provider may take, body included, in milliseconds. @default 30000 */
  requestTimeoutMs?: number
  /**
   * Write exact types beside each manifest (`art.images.d.yaml.ts`), so named imports are checked. Needs
   * `"allowArbitraryExtensions": true` in tsconfig.json. @default false
   */
  dts?: boolean
  /** Where files derived from the cache (formats, widths, placeholders) are kept; rebuilt when missing.
   * @default 'node_modules/.cache/unplugin-imagegen' */
  derivedCacheDir?: string
  /** Manifests the plugin handles and the CLI finds: globs (relative to the root) or RegExps over absolute paths. @default every `*.images.yaml` */
  include?: FilterPattern
  /** Manifests left alone, as for `include`. @default none */
  exclude?: FilterPattern
}

export const CONFIG_FILE = 'imagegen.config.json'

/** `must be a whole number from 1 to 64 (got 0)`: the same words for options, the config file and flags. */
const count = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const rule = mustBe(max === Number.MAX_SAFE_INTEGER ? `a whole number ${min} or more` : `a whole number from ${min} to ${max}`)
  return z.optional(z.int(rule).check(z.minimum(min, rule), z.maximum(max, rule)))
}
const text = (rule: string) => z.optional(z.string(mustBe(rule)).check(z.minLength(1, mustBe(rule))))
const pattern = z.optional(
  z.union(
    [z.string(), z.instanceof(RegExp), z.array(z.union([z.string(), z.instanceof(RegExp)]))],
    mustBe('a glob, a RegExp, or a list of them'),
  ),
)
const provider = z.custom<Provider>(
  (v) => typeof v === 'object' && v !== null && typeof (v as Provider).generate === 'function' && typeof (v as Provider).name === 'string',
)

const optionsSchema = z.strictObject({
  root: text('a path to a folder'),
  cacheDir: text('a path to a folder'),
  // the value is never shown: it may be the key
  apiKey: z.optional(z.string({ error: 'must be a string (better: set the ATLASCLOUD_API_KEY environment variable)' })),
  baseURL: z.optional(z.url({ protocol: /^https?$/, ...mustBe('an http or https URL') })),
  provider: z.optional(z.union([z.enum(['atlas', 'placeholder']), provider], { error: "must be 'atlas', 'placeholder' or an object with `name` and `generate()`" })),
  mode: z.optional(z.enum(['auto', 'offline'], mustBe("'auto' or 'offline'"))),
  concurrency: count(1, 64),
  maxNewImages: count(0),
  timeoutMs: count(1),
  pollIntervalMs: count(1),
  maxPollIntervalMs: count(1),
  requestTimeoutMs: count(1),
  dts: z.optional(z.boolean(mustBe('true or false'))),
  derivedCacheDir: text('a path to a folder'),
  include: pattern,
  exclude: pattern,
})

/** A folder the committed file may name: inside the project, where a commit cannot aim writes elsewhere. */
const insideProject = z.optional(
  z
    .string(mustBe('a folder inside the project'))
    .check(
      z.refine((path) => path !== '' && !isAbsolute(path) && !normalize(path).split(/[\\/]/).includes('..'), 'must be a folder inside the project (a relative path without `..`)'),
    ),
)
const globs = z.optional(z.union([z.string(), z.array(z.string())], mustBe('a glob or a list of globs')))

/**
 * The config file: the options less the root (the file's folder is the root), the key and where it is sent (the file is
 * committed, so anyone who can commit could aim the key at their own host) and code; its folders stay in the project.
 */
const fileSchema = z.extend(z.omit(optionsSchema, { root: true, apiKey: true, provider: true, baseURL: true }), {
  cacheDir: insideProject,
  derivedCacheDir: insideProject,
  $schema: z.optional(z.string(mustBe('the URL or path of the JSON schema'))),
  provider: z.optional(
    z.enum(['atlas', 'placeholder'], {
      error: (issue) => `must be "atlas" or "placeholder" (got ${JSON.stringify(issue.input)}); a custom provider object can only be given in the plugin options`,
    }),
  ),
  include: globs,
  exclude: globs,
})

/** What a config file must not hold, and why. */
const NOT_IN_FILE: Record<string, string> = {
  apiKey: '`apiKey` must not be in the config file, which is committed: set the ATLASCLOUD_API_KEY environment variable instead',
  root: '`root` cannot be set in the config file: the folder that holds the file is the root',
  baseURL:
    '`baseURL` must not be in the config file: the key is sent there, and a commit could aim it at any host; set the ATLASCLOUD_BASE_URL environment variable or the plugin option `baseURL` instead',
}

/** The options with every default settled (see `resolveOptions`). */
export type ResolvedOptions = ReturnType<typeof resolveOptions>

/**
 * Validates the options once and settles every default: the root (see `findProjectRoot`),
 * then `imagegen.config.json` there under the given options (which win field by field), then
 * the environment (`ATLASCLOUD_API_KEY`, `ATLASCLOUD_BASE_URL`, `IMAGEGEN_OFFLINE`).
 * `from` is where the search for the root starts: the bundler's root, or the CLI's folder.
 * Throws an `ImagegenError` (code `OPTIONS`) naming each bad option. Never returns or logs the key.
 */
export function resolveOptions(options: Options = {}, { from, env = process.env }: { from?: string; env?: NodeJS.ProcessEnv } = {}) {
  const checked = optionsSchema.safeParse(options)
  if (!checked.success) throw new ImagegenError('OPTIONS', `invalid plugin options: ${describeIssues(checked.error, optionsSchema).join('; ')}`)
  const given = checked.data
  const root = given.root ? resolve(given.root) : findProjectRoot(resolve(from ?? process.cwd()))
  const file = readConfigFile(root)
  const o = { ...file?.options, ...withoutUndefined(given) }
  const offline = o.mode === 'offline' || (o.mode === undefined && ['1', 'true'].includes(env.IMAGEGEN_OFFLINE ?? ''))
  // A key of spaces (an empty secret in CI, say) is no key: the build then lists what is missing.
  const apiKey = o.apiKey?.trim() || env.ATLASCLOUD_API_KEY?.trim() || undefined
  const offlineReason = "offline mode is on (`mode: 'offline'` or IMAGEGEN_OFFLINE=1)"

  let chosen: Provider
  /** Why missing images cannot be generated now; undefined when they can. */
  let cannotGenerate: string | undefined
  if (o.provider === 'placeholder') {
    chosen = createPlaceholderProvider()
  } else if (o.provider === undefined || o.provider === 'atlas') {
    const { timeoutMs, pollIntervalMs, maxPollIntervalMs, requestTimeoutMs } = o
    const baseURL = o.baseURL || env.ATLASCLOUD_BASE_URL?.trim() || undefined
    const settings = { apiKey, baseURL, timeoutMs, pollIntervalMs, maxPollIntervalMs, requestTimeoutMs }
    // its client is loaded only when an image is to be made
    chosen = lazyProvider(ATLAS_PROVIDER, async () => (await import('./providers/atlas')).createAtlasProvider(settings))
    cannotGenerate = offline ? offlineReason : apiKey ? undefined : 'no API key is set (ATLASCLOUD_API_KEY)'
  } else {
    chosen = o.provider
    cannotGenerate = offline ? offlineReason : undefined
  }
  return {
    root,
    /** Absolute path of `imagegen.config.json`, when the root has one. */
    configFile: file?.path,
    cacheDir: resolve(root, o.cacheDir ?? '.imagegen'),
    derivedCacheDir: resolve(root, o.derivedCacheDir ?? 'node_modules/.cache/unplugin-imagegen'),
    provider: chosen,
    cannotGenerate,
    concurrency: o.concurrency ?? 4,
    maxNewImages: o.maxNewImages ?? 25,
    dts: o.dts ?? false,
    include: o.include as FilterPattern | undefined,
    exclude: o.exclude as FilterPattern | undefined,
  }
}

/**
 * The project root, searched from `start` upwards: the nearest folder that holds
 * `imagegen.config.json`, or else the project's edge, the first folder with a `package.json` or
 * `.git`. So a bundler whose root is a subfolder (Nuxt's `app/`) and `imagegen status` run from
 * `src/` find the same root and cache. Without either, `start`.
 */
export function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, CONFIG_FILE)) || existsSync(join(dir, 'package.json')) || existsSync(join(dir, '.git'))) return dir
    if (dirname(dir) === dir) return start
  }
}

/**
 * CLI flags onto the options they stand for (`--max-new` is `maxNewImages`), checked by the
 * same schema; `values` are parseArgs' strings. Throws a `USAGE` error naming the flag.
 */
export function flagOptions(values: Record<string, unknown>, flags: Record<string, keyof Options>): Options {
  const options: Record<string, unknown> = {}
  for (const [flag, option] of Object.entries(flags)) {
    const raw = values[flag]
    if (raw === undefined) continue
    const value = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw
    const checked = optionsSchema.shape[option].safeParse(value)
    if (!checked.success) {
      const message = checked.error.issues[0]!.message.replace(/\(got .*\)$/, `(got \`${String(raw)}\`)`)
      throw new ImagegenError('USAGE', `\`--${flag}\` ${message}`, { hint: '(see `imagegen --help`)' })
    }
    options[option] = checked.data
  }
  return options as Options
}

/** Reads `imagegen.config.json` in `root`, or returns undefined when there is none. */
function readConfigFile(root: string): { path: string; options: z.infer<typeof fileSchema> } | undefined {
  const path = join(root, CONFIG_FILE)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ImagegenError('OPTIONS', `cannot read ${CONFIG_FILE}: ${(error as NodeJS.ErrnoException).code ?? error}`, { id: path })
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new ImagegenError('OPTIONS', `${CONFIG_FILE} is not valid JSON: ${(error as Error).message}`, { id: path })
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ImagegenError('OPTIONS', `${CONFIG_FILE} must hold a JSON object of options, like { "maxNewImages": 50 }`, { id: path })
  }
  const refused = Object.keys(data).flatMap((key) => NOT_IN_FILE[key] ?? [])
  const rest = Object.fromEntries(Object.entries(data).filter(([key]) => !NOT_IN_FILE[key]))
  const parsed = fileSchema.safeParse(rest)
  const problems = [...refused, ...(parsed.success ? [] : describeIssues(parsed.error, fileSchema))]
  if (problems.length > 0) throw new ImagegenError('OPTIONS', `${refused.length ? '' : 'invalid '}${CONFIG_FILE}: ${problems.join('; ')}`, { id: path })
  return { path, options: parsed.data! }
}

/** zod's issues in our words: the option's name in backticks, a did-you-mean for unknown ones. */
function describeIssues(error: z.core.$ZodError, schema: z.ZodMiniObject): string[] {
  const known = Object.keys(schema.shape).filter((key) => key !== '$schema')
  return error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => {
          const guess = didYouMean(key, known)
          return `unknown option \`${key}\`: ${guess ? `did you mean \`${guess}\`?` : `known options: ${known.join(', ')}`}`
        })
      : [`\`${issue.path.join('.') || 'options'}\` ${issue.message}`],
  )
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
