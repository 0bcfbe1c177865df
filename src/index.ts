/**
 * The package's root: the unplugin (its bundler entries, `unplugin-imagegen/vite` …, import `./plugin` alone, so that
 * a build loads none of the API below) and the small documented API (see the README's "API" section); nothing else is public.
 */
import { Project } from './core/project'
import { resolveOptions, type Options } from './options'

export { unplugin, unpluginFactory, default } from './plugin'
export type { Options } from './options'
export type { GeneratedImage } from './core/module-code'
export type { ImageSpec } from './core/schema'
export type { Manifest, ManifestEntry } from './core/manifest'
export type { ErrorCode, SourceLocation } from './core/errors'
export type { GenerationJob, GenerationResult, Provider, ProviderRequest, ResumeState, UploadMemo, UploadRecord } from './providers/types'
export { ImagegenError, ManifestError, ProviderError } from './core/errors'
export { parseManifest } from './core/manifest'
export { keySpec } from './core/key'
export type { Project, ReadManifest } from './core/project'
export { createAtlasProvider } from './providers/atlas'
export { createPlaceholderProvider } from './providers/placeholder'

/**
 * The pipeline the plugin and the CLI share, for scripts (see the README's "API"), with `root` and the options settled as the
 * plugin settles them, the root searched from `from` (default: the current folder). Throws an `ImagegenError` (`OPTIONS`) for bad options.
 */
export function openProject(options: Options = {}, where: { from?: string; env?: NodeJS.ProcessEnv } = {}): Project {
  return new Project(resolveOptions(options, where))
}
