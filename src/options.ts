import { isAbsolute, resolve } from 'node:path'
import { z } from 'zod'
import { CONFIG_FILE, readConfigFile } from './config'
import { ImagegenError } from './core/errors'
import { createAtlasProvider } from './providers/atlas/provider'
import { createPlaceholderProvider } from './providers/placeholder'
import type { Provider } from './providers/types'

export interface Options {
  /**
   * The project root: the cache folder and the paths in messages are relative to it,
   * and reference images must lie inside it.
   * @default the bundler's root (Vite's `root`), else `process.cwd()`
   */
  root?: string
  /**
   * Where generated images and their records are kept. Commit it.
   * @default '.imagegen'
   */
  cacheDir?: string
  /**
   * The Atlas Cloud API key. Prefer the environment variable: a key in a config file ends up in git.
   * @default process.env.ATLASCLOUD_API_KEY
   */
  apiKey?: string
  /**
   * The Atlas Cloud API base URL.
   * @default process.env.ATLASCLOUD_BASE_URL ?? 'https://api.atlascloud.ai'
   */
  baseURL?: string
  /**
   * Who makes the images: `'atlas'` (FLUX.1 [schnell] on Atlas Cloud), `'placeholder'`
   * (deterministic local drawings, no key, no network), or your own `Provider`.
   * The provider is part of every image's key.
   * @default 'atlas'
   */
  provider?: 'atlas' | 'placeholder' | Provider
  /**
   * `'auto'` generates missing images when it can; `'offline'` never touches the network
   * (missing images then fail a build, or show a placeholder in dev).
   * @default 'offline' when IMAGEGEN_OFFLINE=1, else 'auto'
   */
  mode?: 'auto' | 'offline'
  /**
   * Predictions that run at once.
   * @default 4
   */
  concurrency?: number
  /**
   * The most new images one build may generate; more fails before anything is submitted.
   * @default 25
   */
  maxNewImages?: number
  /**
   * How long one image may take, from submit to downloaded file, in milliseconds.
   * @default 300000
   */
  timeoutMs?: number
  /**
   * The wait before an Atlas prediction's first poll, in milliseconds; it then grows ×1.5 up to 5 s.
   * @default 1000
   */
  pollIntervalMs?: number
  /**
   * The longest wait between two polls of one prediction, in milliseconds.
   * @default 5000
   */
  maxPollIntervalMs?: number
  /**
   * How long one HTTP request to the provider may take, body included, in milliseconds.
   * @default 30000
   */
  requestTimeoutMs?: number
  /**
   * Write exact types beside each manifest (`art.images.d.yaml.ts`), so named imports are
   * checked. Needs `"allowArbitraryExtensions": true` in tsconfig.json.
   * @default false
   */
  dts?: boolean
  /**
   * Where files derived from the cache (other formats, widths, placeholders) are kept.
   * They are rebuilt from `.imagegen/` whenever missing; do not commit them.
   * @default 'node_modules/.cache/unplugin-imagegen'
   */
  derivedCacheDir?: string
}

const optionsSchema = z.strictObject({
  root: z.string().min(1).optional(),
  cacheDir: z.string().min(1).optional(),
  apiKey: z.string().optional(),
  baseURL: z.url({ protocol: /^https?$/ }).optional(),
  provider: z
    .union([
      z.enum(['atlas', 'placeholder']),
      z.custom<Provider>((v) => typeof v === 'object' && v !== null && typeof (v as Provider).generate === 'function' && typeof (v as Provider).name === 'string', {
        error: "must be 'atlas', 'placeholder' or an object with `name` and `generate()`",
      }),
    ])
    .optional(),
  mode: z.enum(['auto', 'offline']).optional(),
  concurrency: z.int().min(1).max(64).optional(),
  maxNewImages: z.int().min(0).optional(),
  timeoutMs: z.int().min(1).optional(),
  pollIntervalMs: z.int().min(1).optional(),
  maxPollIntervalMs: z.int().min(1).optional(),
  requestTimeoutMs: z.int().min(1).optional(),
  dts: z.boolean().optional(),
  derivedCacheDir: z.string().min(1).optional(),
})

export interface ResolvedOptions {
  root: string
  cacheDir: string
  provider: Provider
  /** Why missing images cannot be generated now, or undefined when they can. */
  cannotGenerate?: string
  concurrency: number
  maxNewImages: number
  dts: boolean
  derivedCacheDir: string
}

/** Validates the options once and settles every default. Never returns or logs the key. */
export function resolveOptions(options: Options = {}, defaults: { root?: string; env?: NodeJS.ProcessEnv } = {}): ResolvedOptions {
  const given = validateOptions(options, 'invalid plugin options')
  const env = defaults.env ?? process.env
  const root = resolve(given.root ?? defaults.root ?? process.cwd())
  // The project's imagegen.config.json lies under the options given here, which win field by field.
  const file = readConfigFile(root)
  const o = file ? { ...validateOptions(file.options, `invalid ${CONFIG_FILE}`), ...withoutUndefined(given) } : given
  const cacheDir = o.cacheDir && isAbsolute(o.cacheDir) ? o.cacheDir : resolve(root, o.cacheDir ?? '.imagegen')
  const offline = o.mode === 'offline' || (o.mode === undefined && ['1', 'true'].includes(env.IMAGEGEN_OFFLINE ?? ''))
  // A key of spaces (an empty secret in CI, say) is no key: the build then lists what is missing.
  const apiKey = o.apiKey?.trim() || env.ATLASCLOUD_API_KEY?.trim() || undefined

  let provider: Provider
  let cannotGenerate: string | undefined
  if (o.provider === 'placeholder') {
    provider = createPlaceholderProvider()
  } else if (o.provider === undefined || o.provider === 'atlas') {
    provider = createAtlasProvider({
      apiKey,
      baseURL: o.baseURL || env.ATLASCLOUD_BASE_URL || undefined,
      timeoutMs: o.timeoutMs,
      pollIntervalMs: o.pollIntervalMs,
      maxPollIntervalMs: o.maxPollIntervalMs,
      requestTimeoutMs: o.requestTimeoutMs,
    })
    if (offline) cannotGenerate = 'offline mode is on (`mode: \'offline\'` or IMAGEGEN_OFFLINE=1)'
    else if (!apiKey) cannotGenerate = 'no API key is set (ATLASCLOUD_API_KEY)'
  } else {
    provider = o.provider
    if (offline) cannotGenerate = 'offline mode is on (`mode: \'offline\'` or IMAGEGEN_OFFLINE=1)'
  }
  return { root, cacheDir, provider, cannotGenerate, concurrency: o.concurrency ?? 4, maxNewImages: o.maxNewImages ?? 25, dts: o.dts ?? false,
    derivedCacheDir: resolve(root, o.derivedCacheDir ?? 'node_modules/.cache/unplugin-imagegen'),
  }
}

function validateOptions(options: unknown, what: string): z.infer<typeof optionsSchema> {
  const parsed = optionsSchema.safeParse(options)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `\`${i.path.join('.') || 'options'}\` ${i.message}`)
    throw new ImagegenError(`${what}: ${problems.join('; ')}`)
  }
  return parsed.data
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
