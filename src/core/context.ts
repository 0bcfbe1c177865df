import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ResolvedOptions } from '../options'
import { ImageCache, type CachedImage } from './cache'
import { findManifests } from './discover'
import { entryLabel, keyEntries, type KeyedEntry } from './entries'
import { writeDeclaration } from './declaration'
import { ParsedStore } from './parsed-store'
import { PACKAGE_VERSION } from './version'
import { Deriver, type DerivedFile } from './derive'
import { displayPath, formatLocation, ImagegenError, ManifestError } from './errors'
import { parseManifest, type Manifest } from './manifest'
import { Code, collectionModule, ModuleImports, singleImageModule, type ImageModuleValue } from './module-code'
import { BudgetError, GenerationError, planImages, Scheduler, type PlannedImage } from './scheduler'

export interface LoadedManifest {
  manifest: Manifest
  entries: KeyedEntry[]
  /** The cached image of each key; absent for images that could not be made. */
  images: Map<string, CachedImage>
  /** Files the module depends on besides the manifest itself (reference images), to watch. */
  dependencies: string[]
  /** In dev: the images being generated in the background; resolves true when any arrived (reload the module then). */
  generating?: Promise<boolean>
}

export interface ContextHooks {
  /** The summary line. */
  info(message: string): void
  /** Something the user should fix that does not stop the dev server. */
  warn(message: string): void
}

/** A file the module must point at: its absolute path and the name it should be emitted under. */
export interface AssetFile {
  path: string
  name: string
}

/** How a bundler spells the URL of a file in module code; `imports` collects any imports it needs. */
export type UrlFor = (file: AssetFile, imports: ModuleImports) => Code | Promise<Code>

/**
 * Everything one plugin instance knows: options, cache, scheduler and the current
 * build's tally. Hooks hand off to it; nothing here knows a bundler.
 */
export class ImagegenContext {
  readonly cache: ImageCache
  readonly deriver: Deriver
  private readonly store: ParsedStore
  private scheduler!: Scheduler
  private command: 'build' | 'serve' = 'build'
  private tally = new Map<string, 'cached' | 'generated'>()
  private missing = new Map<string, KeyedEntry>()
  private started = 0
  private aborter = new AbortController()
  private readonly failed = new Set<string>()
  private readonly parsed = new Map<string, { digest: string; result: { manifest: Manifest; entries: KeyedEntry[]; dependencies: string[] } }>()

  constructor(
    readonly options: ResolvedOptions,
    private readonly hooks: ContextHooks,
  ) {
    this.cache = new ImageCache(options.cacheDir)
    this.deriver = new Deriver(options.derivedCacheDir)
    this.store = new ParsedStore(join(options.derivedCacheDir, 'manifests'), PACKAGE_VERSION)
    this.startBuild('build')
  }

  /** Resets the tally and the new-image budget for one build (or one dev server). */
  startBuild(command: 'build' | 'serve'): void {
    this.command = command
    this.tally.clear()
    this.missing.clear()
    this.started = performance.now()
    this.aborter = new AbortController()
    this.scheduler = new Scheduler({
      provider: this.options.provider,
      cache: this.cache,
      concurrency: this.options.concurrency,
      maxNewImages: this.options.maxNewImages,
      signal: this.aborter.signal,
    })
  }

  /**
   * Before a build loads anything: plans every manifest of the project, so that a build
   * that would generate more than `maxNewImages` fails before a single submit.
   * Manifests that do not parse are left to fail when (and if) they are imported.
   */
  async preflight(): Promise<void> {
    if (this.options.cannotGenerate || this.command !== 'build') return
    const files = await findManifests(this.options.root, new Set([this.options.cacheDir]))
    const entries: KeyedEntry[] = []
    await Promise.all(
      files.map(async (file) => {
        try {
          entries.push(...(await this.readManifest(file)).entries)
        } catch (error) {
          if (!(error instanceof ManifestError)) throw error
        }
      }),
    )
    const { missing } = await planImages(entries, this.cache)
    if (missing.length > this.options.maxNewImages) throw new BudgetError(missing.length, this.options.maxNewImages, this.options.maxNewImages)
  }

  /**
   * Reads a manifest and finds or makes its images. With `background` (a dev server that can
   * reload the module later), missing images are made without waiting for them.
   */
  async load(file: string, { background = false }: { background?: boolean } = {}): Promise<LoadedManifest> {
    const { manifest, entries, dependencies } = await this.readManifest(file)
    const plan = await planImages(entries, this.cache)
    // In a dev session an image that failed is not tried again until its spec changes (a new
    // key) or the server restarts: each reload would otherwise pay for it again.
    const missing = plan.missing.filter((image) => !this.failed.has(image.key))
    const images = new Map<string, CachedImage>()
    for (const image of plan.cached) {
      images.set(image.key, image.cached!)
      if (!this.tally.has(image.key)) this.tally.set(image.key, 'cached')
    }
    let generating: Promise<boolean> | undefined
    if (missing.length > 0) {
      if (this.options.cannotGenerate) {
        this.noteMissing(missing)
      } else if (this.command === 'serve' && background) {
        // A dev server never waits for a prediction: the module shows placeholders now,
        // and the caller reloads it once images have arrived.
        generating = this.generate(missing).then(
          () => true,
          (error: Error) => {
            this.hooks.warn(error.message)
            const failed = error instanceof GenerationError ? error.failures.map((f) => f.image) : missing
            for (const image of failed) this.failed.add(image.key)
            return error instanceof GenerationError && error.generated.length > 0
          },
        )
      } else {
        for (const cached of await this.generate(missing)) images.set(cached.record.key, cached)
      }
    }
    return { manifest, entries, images, dependencies, generating }
  }

  private async generate(missing: readonly PlannedImage[]): Promise<CachedImage[]> {
    const generated = await this.scheduler.generate(missing)
    for (const cached of generated) this.tally.set(cached.record.key, 'generated')
    return generated
  }

  /** The module's code, with each image's URL spelled by the bundler. */
  async moduleCode(loaded: LoadedManifest, urlFor: UrlFor): Promise<string> {
    const imports = new ModuleImports()
    const values = await Promise.all(
      loaded.entries.map(async (entry): Promise<ImageModuleValue> => {
        const described = {
          alt: entry.spec.alt,
          prompt: entry.pixels.prompt,
          model: entry.pixels.model,
          seed: entry.pixels.seed,
          key: entry.key,
        }
        const cached = loaded.images.get(entry.key)
        if (!cached) {
          const state = loaded.generating ? 'generating' : 'missing'
          const { width, height } = entry.pixels
          const format = entry.spec.format === 'original' ? 'png' : entry.spec.format
          return { src: new Code(JSON.stringify(missingImageDataUrl(entry, state))), width, height, format, ...described }
        }
        const derived = await this.deriver.derive(cached, entry.spec)
        const url = (file: DerivedFile) => urlFor({ path: file.path, name: file.name }, imports)
        const src = await url(derived.main)
        const srcset = derived.widths.length
          ? [...(await Promise.all(derived.widths.map(async (file) => [await url(file), file.width] as const))), [src, derived.main.width] as const]
          : undefined
        return {
          src,
          width: derived.main.width,
          height: derived.main.height,
          format: derived.format,
          ...described,
          srcset,
          placeholder: derived.placeholder,
        }
      }),
    )
    if (loaded.manifest.kind === 'single') return singleImageModule(values[0]!, imports.preamble())
    return collectionModule(new Map(loaded.entries.map((entry, i) => [entry.name!, values[i]!])), imports.preamble())
  }

  /** Ends a build: the error for missing images, else the summary line. */
  finishBuild(): void {
    if (this.missing.size > 0 && this.command === 'build') throw missingImagesError([...this.missing.values()], this.options.cannotGenerate!)
    const counts = [...this.tally.values()]
    if (counts.length === 0) return
    const generated = counts.filter((c) => c === 'generated').length
    const seconds = ((performance.now() - this.started) / 1000).toFixed(1)
    this.hooks.info(
      `imagegen: ${counts.length} image${counts.length === 1 ? '' : 's'} — ${counts.length - generated} cached, ${generated} generated in ${seconds}s`,
    )
  }

  /** Stops every request and sleep of this instance (the build is ending). */
  abort(): void {
    this.aborter.abort(new ImagegenError('the build stopped'))
  }

  displayPath(file: string): string {
    return displayPath(this.options.root, file)
  }

  private async readManifest(file: string): Promise<{ manifest: Manifest; entries: KeyedEntry[]; dependencies: string[] }> {
    const display = this.displayPath(file)
    let bytes: Buffer
    try {
      bytes = await readFile(file)
    } catch (error) {
      throw new ImagegenError(`cannot read ${display}: ${(error as NodeJS.ErrnoException).code ?? error}`)
    }
    // A build reads each manifest twice (the preflight plans them all, then each is loaded), a
    // dev server or watcher again on every change, and every build the same files as the last:
    // unchanged bytes are parsed and keyed once, and remembered on disk. Manifests with reference
    // images are always read afresh, since those files may change under the same manifest.
    const digest = this.store.digest(bytes, display, this.options.provider.name)
    const known = this.parsed.get(file)
    if (known?.digest === digest) return known.result
    const stored = this.store.get(digest)
    const { manifest, entries } = stored ?? { manifest: parseManifest(bytes, display), entries: undefined }
    if (this.options.dts) await writeDeclaration(manifest, file)
    const keyed = entries ?? (await keyEntries(manifest, { manifestPath: file, root: this.options.root, provider: this.options.provider.name }))
    const references = keyed.map((e) => e.request.image).filter((p): p is string => p !== undefined)
    // The manifest itself is the module's own file, watched already; listing it would make Vite
    // record the module as its own importer, which stops HMR from propagating.
    const result = { manifest, entries: keyed, dependencies: [...new Set(references)] }
    if (references.length === 0) {
      this.parsed.set(file, { digest, result })
      if (!stored) await this.store.set(digest, { manifest, entries: keyed }).catch(() => {})
    } else {
      this.parsed.delete(file)
    }
    return result
  }

  private noteMissing(images: readonly PlannedImage[]): void {
    for (const image of images) {
      for (const entry of image.entries) this.missing.set(`${formatLocation(entry.location)}`, entry)
    }
    if (this.command === 'serve') {
      const names = images.flatMap((i) => i.entries.map(entryLabel))
      this.hooks.warn(`[imagegen] showing placeholders for ${names.length} missing image${names.length === 1 ? '' : 's'} (${this.options.cannotGenerate}): ${names.join(', ')}`)
    }
  }
}

export function missingImagesError(entries: readonly KeyedEntry[], reason: string): ImagegenError {
  const lines = entries.map((entry) => `  ${entryLabel(entry)}: ${entry.pixels.prompt.length > 60 ? `${entry.pixels.prompt.slice(0, 57)}…` : entry.pixels.prompt}`)
  return new ImagegenError(
    `${entries.length} image${entries.length === 1 ? ' is' : 's are'} not in the cache and cannot be generated: ${reason}.\n` +
      `${lines.join('\n')}\n` +
      'To fix it, set ATLASCLOUD_API_KEY and build again, or run `npx imagegen generate` where the key is set and commit the `.imagegen/` folder.',
  )
}

/** A neutral box of the asked size, shown in dev while an image is missing or being generated. */
export function missingImageDataUrl(entry: KeyedEntry, state: 'generating' | 'missing'): string {
  const { width, height } = entry.pixels
  const label = entry.spec.alt.replace(/[<>&"]/g, '').slice(0, 80)
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect width="100%" height="100%" fill="#d9dce1"/>` +
    `<text x="50%" y="50%" text-anchor="middle" font-family="sans-serif" font-size="${Math.max(12, Math.round(width / 40))}" fill="#5b6270">${state === 'generating' ? 'generating…' : 'missing'}: ${label}</text></svg>`
  return `data:image/svg+xml,${encodeURIComponent(svg)}`
}
