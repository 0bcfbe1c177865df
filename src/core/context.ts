import type { ResolvedOptions } from '../options'
import type { CachedImage } from './cache'
import { Deriver, type DerivedFile } from './derive'
import { entryLabel, type KeyedEntry } from './entries'
import { formatLocation, ImagegenError, plural, PREFIX } from './errors'
import { Code, imageModule, ModuleImports, type ImageModuleValue } from './module-code'
import { BillGuard, imageLabel, missingImagesError, type PlannedImage } from './plan'
import { Project, type ReadManifest } from './project'
import { GenerationError, type MadeImage, type Scheduler } from './scheduler'

export interface LoadedManifest extends ReadManifest {
  /** The cached image of each key; absent for images that could not be made. */
  images: Map<string, CachedImage>
  /** In dev: the images being generated in the background; resolves true when any arrived (reload the module then). */
  generating?: Promise<boolean>
}

/** `info` gives the summary line; `warn` something the user should fix that does not stop the dev server. */
export type ContextLog = Record<'info' | 'warn', (message: string) => void>

/** One build's tally (image key → how it was had) and start, shared by the builds nested in it. */
type Build = { open: number; tally: Map<string, 'cached' | 'generated'>; started: number }

/**
 * Builds of one project open at once in this process, by root. A framework may run a build inside another with a plugin
 * instance of its own (SvelteKit runs its client build from its server build's `writeBundle`): they share one tally, and
 * the outermost prints the one summary line as it closes.
 */
const openBuilds = new Map<string, Build>()

/** How a bundler spells the URL of a file in module code; `imports` collects any imports it needs. */
export type UrlFor = (file: DerivedFile, imports: ModuleImports) => Code | Promise<Code>

/**
 * By default the module imports the file, and the bundler's own asset handling emits it and gives its URL: Vite's asset
 * plugin, asset modules (`output.publicPath`), esbuild's `file` loader (`publicPath`), Next's static images.
 */
const importFile: UrlFor = (file, imports) => imports.add(file.path)

/**
 * What one plugin instance knows: the project (its pipeline, shared with the CLI) and the
 * current build's state — the tally for the summary line, the bill guard, missing images.
 * Hooks hand off to it; nothing here knows a bundler.
 */
export class ImagegenContext {
  readonly project: Project
  private readonly deriver: Deriver
  private scheduler!: Scheduler
  private guard!: BillGuard
  /** This build's `guardProject`, once started. */
  private projectGuard?: Promise<void>
  private command: 'build' | 'serve' = 'build'
  private build!: Build
  /** Whether `build` is in `openBuilds` for this instance. */
  private joined = false
  /** This build has ended (`closeBuild`): Vite calls `closeBundle` after a failed `buildEnd` too, and that must not print a summary. */
  private closed = false
  /** Keys a summary line of this instance already counted: a framework's client and SSR builds print one line, not two. */
  private readonly reported = new Set<string>()
  private readonly missing = new Map<string, KeyedEntry>()
  private aborter = new AbortController()
  /** Keys being made in the background in dev, each with its batch (true when any image of it arrived). */
  private readonly inBackground = new Map<string, Promise<boolean>>()
  /** Keys that failed in this dev session: not tried (and paid) again until the spec changes or the server restarts. */
  private readonly failed = new Map<string, string>()

  constructor(
    readonly options: ResolvedOptions,
    readonly log: ContextLog = { info: console.log, warn: (m) => console.warn(`${PREFIX} ${m}`) },
  ) {
    this.project = new Project(options)
    this.deriver = new Deriver(options.derivedCacheDir)
    this.reset('build')
  }

  /** Resets the tally and the bill guard for one build (or one dev server's whole life); a build joins one open on its root. */
  startBuild(command: 'build' | 'serve'): void {
    this.closeBuild(false)
    this.reset(command)
    if (command !== 'build') return
    const outer = openBuilds.get(this.options.root)
    if (outer) this.build = outer
    else openBuilds.set(this.options.root, this.build)
    this.build.open++
    this.joined = true
  }

  private reset(command: 'build' | 'serve'): void {
    this.command = command
    this.closed = false
    this.build = { open: 0, tally: new Map(), started: performance.now() }
    this.missing.clear()
    this.aborter = new AbortController()
    this.guard = new BillGuard(this.options.maxNewImages)
    this.projectGuard = undefined
    this.scheduler = this.project.scheduler({
      signal: this.aborter.signal,
      onEvent: (e) => {
        if (e.type === 'waiting') this.log.warn(`waiting for ${imageLabel(e.image)}: another process is making it (${e.holder})`)
        if (e.type === 'warning') this.log.warn(`${imageLabel(e.image)}: ${e.message}`)
      },
    })
  }


  /**
   * Once per build, before its first submit: plans every manifest of the project, so that a build that would
   * generate more than `maxNewImages` in all fails (a `BudgetError`, for this load and every later one that would
   * submit) before a single submit, whatever the order the bundler loads manifests in. Manifests that do not parse
   * are left to fail when (and if) they are imported.
   */
  private guardProject(): Promise<void> {
    this.projectGuard ??= (async () => {
      const { entries } = await this.project.readAll(await this.project.findManifests())
      this.guard.take(this.project.plan(entries).missing)
    })()
    return this.projectGuard
  }

  /** Reads a manifest and finds or makes its images; with `background` (a dev server that can reload the module), without waiting. */
  async load(file: string, { background = false }: { background?: boolean } = {}): Promise<LoadedManifest> {
    const read = await this.project.read(file)
    const plan = this.project.plan(read.entries)
    const missing = plan.missing.filter((image) => !this.failed.has(image.key))
    const images = new Map<string, CachedImage>()
    for (const image of plan.cached) {
      images.set(image.key, image.cached!)
      if (!this.build.tally.has(image.key)) this.build.tally.set(image.key, 'cached')
    }
    let generating: Promise<boolean> | undefined
    if (missing.length > 0 && this.options.cannotGenerate) {
      for (const image of missing) for (const entry of image.entries) this.missing.set(formatLocation(entry.location), entry)
      if (this.command === 'serve') {
        const names = missing.flatMap((image) => image.entries.map(entryLabel))
        this.log.warn(`showing placeholders for ${plural(names.length, 'missing image')} (${this.options.cannotGenerate}): ${names.join(', ')}`)
      }
    } else if (missing.length > 0 && this.command === 'serve' && background) {
      // A dev server never waits for a prediction: the module shows placeholders now, and is reloaded once images have
      // arrived. A second load of the same manifest (SSR, then the client) joins what is under way: one line, one batch.
      const fresh = missing.filter((image) => !this.inBackground.has(image.key))
      if (fresh.length > 0) {
        const started = performance.now()
        const batch = this.generate(fresh).then(
          (made) => {
            this.log.info(`imagegen: ${plural(made.length, 'image')} generated in ${secondsSince(started)}s`)
            return true
          },
          (error: Error) => {
            this.log.warn(error.message)
            const failed = error instanceof GenerationError ? error.failures : fresh.map((image) => ({ image, error }))
            for (const { image, error: why } of failed) this.failed.set(image.key, why.message)
            return error instanceof GenerationError && error.generated.length > 0
          },
        )
        for (const image of fresh) this.inBackground.set(image.key, batch)
        void batch.finally(() => fresh.forEach((image) => this.inBackground.delete(image.key)))
      }
      generating = Promise.all(missing.map((image) => this.inBackground.get(image.key))).then((arrived) => arrived.some(Boolean))
    } else if (missing.length > 0) {
      if (this.command === 'build') await this.guardProject()
      for (const cached of await this.generate(missing)) images.set(cached.record.key, cached)
    }
    return { ...read, images, generating }
  }

  /** Why the image of `key` failed in this dev session (its message), if it did. */
  failureOf(key: string): string | undefined {
    return this.failed.get(key)
  }

  /** Counts `images` against this build's (or dev server's) `maxNewImages`; throws a `BudgetError` when they would pass it. */
  takeBudget(images: readonly PlannedImage[]): void {
    this.guard.take(images)
  }

  private async generate(missing: readonly PlannedImage[]): Promise<MadeImage[]> {
    this.guard.take(missing)
    const generated = await this.scheduler.generate(missing)
    for (const made of generated) this.build.tally.set(made.record.key, made.elsewhere ? 'cached' : 'generated')
    return generated
  }

  async moduleCode(loaded: LoadedManifest, urlFor: UrlFor = importFile): Promise<string> {
    const imports = new ModuleImports()
    const derived = await Promise.all(
      loaded.entries.map(async (entry) => {
        const cached = loaded.images.get(entry.key)
        return cached && this.deriver.derive(cached, entry.spec, entry)
      }),
    )
    // URLs are asked for in entry order: a module's imports come out the same in every build.
    const values: ImageModuleValue[] = []
    for (const [i, entry] of loaded.entries.entries()) {
      const described = { alt: entry.spec.alt, prompt: entry.pixels.prompt, model: entry.pixels.model, seed: entry.pixels.seed, key: entry.key }
      const image = derived[i]
      if (!image) {
        const format = entry.spec.format === 'original' ? 'png' : entry.spec.format
        const src = new Code(JSON.stringify(missingImageDataUrl(entry, loaded.generating ? 'generating' : 'missing')))
        values.push({ src, width: entry.pixels.width, height: entry.pixels.height, format, ...described })
        continue
      }
      const src = await urlFor(image.main, imports)
      const { width, height } = image.main
      const srcset: string[] = []
      for (const file of image.widths) srcset.push(`${(await urlFor(file, imports)).js} + " ${file.width}w"`)
      if (srcset.length) srcset.push(`${src.js} + " ${width}w"`)
      const { placeholder } = image
      // derive.ts makes the placeholder 16 pixels wide, of the image's aspect ratio.
      const blur = placeholder && { blurDataURL: placeholder, blurWidth: 16, blurHeight: Math.max(1, Math.round((height * 16) / width)) }
      const srcsetCode = srcset.length ? new Code(srcset.join(' + ", " + ')) : undefined
      values.push({ src, width, height, format: image.format, ...described, srcset: srcsetCode, placeholder, ...blur })
    }
    if (loaded.manifest.kind === 'single') return imageModule(values[0]!, imports)
    return imageModule(new Map(loaded.entries.map((entry, i) => [entry.name!, values[i]!])), imports)
  }

  /** At the end of a build's module loading: fails it when images could not be made (offline, no key). */
  checkBuild(): void {
    if (this.missing.size > 0 && this.command === 'build') throw missingImagesError([...this.missing.values()], this.options.cannotGenerate!)
  }

  /**
   * Ends the build: prints its summary line (with `summary`, for a build, not a dev server) unless a build it is nested in
   * is still open (that one prints it) or this instance already counted every image in it (Nuxt's client and SSR builds).
   */
  closeBuild(summary = true): void {
    if (this.closed) return
    this.closed = true
    const { tally, started } = this.build
    if (this.joined) {
      this.joined = false
      if (--this.build.open > 0) return
      openBuilds.delete(this.options.root)
    }
    if (!summary || this.command !== 'build' || [...tally.keys()].every((key) => this.reported.has(key))) return
    for (const key of tally.keys()) this.reported.add(key)
    const counts = [...tally.values()]
    const generated = counts.filter((c) => c === 'generated').length
    this.log.info(`imagegen: ${plural(counts.length, 'image')} — ${counts.length - generated} cached, ${generated} generated in ${secondsSince(started)}s`)
  }

  /** Both, for a bundler that has no later hook. */
  finishBuild(): void {
    this.checkBuild()
    this.closeBuild()
  }

  /** Stops every request and sleep of this instance (the build is ending). */
  abort(): void {
    this.aborter.abort(new ImagegenError('STOPPED', 'the build stopped'))
  }
}

const secondsSince = (started: number) => ((performance.now() - started) / 1000).toFixed(1)

/** A neutral box of the asked size, shown in dev while an image is missing or being generated. */
function missingImageDataUrl(entry: KeyedEntry, state: 'generating' | 'missing'): string {
  const { width, height } = entry.pixels
  const label = entry.spec.alt.replace(/[<>&"]/g, '').slice(0, 80)
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect width="100%" height="100%" fill="#d9dce1"/>` +
    `<text x="50%" y="50%" text-anchor="middle" font-family="sans-serif" font-size="${Math.max(12, Math.round(width / 40))}" fill="#5b6270">` +
    `${state === 'generating' ? 'generating…' : 'missing'}: ${label}</text></svg>`
  return `data:image/svg+xml,${encodeURIComponent(svg)}`
}
