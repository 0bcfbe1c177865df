import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createFilter } from 'unplugin-utils'
import { version } from '../../package.json'
import type { ResolvedOptions } from '../options'
import { ImageCache, type PendingPrediction } from './cache'
import { writeDeclaration } from './declaration'
import { keyEntries, type KeyedEntry } from './entries'
import { displayPath, ImagegenError, ManifestError } from './errors'
import { MANIFEST_PATTERN, parseManifest, type Manifest } from './manifest'
import { ParsedStore } from './parsed-store'
import { megabytes, readRegularFile } from './read-file'
import { planImages, type Plan, type PlannedImage } from './plan'
import { Scheduler, type GenerateEvent } from './scheduler'

/** Folders that never hold a project's own manifests. */
const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist', 'build', 'out', '.output', '.next', '.nuxt', '.svelte-kit', '.vite', 'coverage'])

/**
 * The largest manifest read (bytes). Real manifests are a few KB; 100,000 entries of a one-line prompt are about 6 MB.
 * The bound stops a manifest that is huge or endless (a symlink to `/dev/zero`) from filling memory.
 */
export const MANIFEST_LIMIT = 8 * 1024 * 1024

/** One manifest, parsed and keyed. */
export interface ReadManifest {
  /** Absolute path. */
  file: string
  manifest: Manifest
  entries: KeyedEntry[]
  /** Files its images depend on besides the manifest (reference images), to watch. */
  dependencies: string[]
}

/**
 * One project's pipeline, the same for the plugin and every CLI command: find manifests →
 * read, parse and key them (each unchanged manifest once, remembered on disk by content) →
 * plan against the cache → (the caller applies the bill guard, `plan.ts`) → generate.
 */
export class Project {
  readonly cache: ImageCache
  /** Whether an absolute path is a manifest this project handles (`*.images.yaml`, within `include`/`exclude`). */
  readonly isManifest: (id: string) => boolean
  private readonly store: ParsedStore
  private readonly parsed = new Map<string, { digest: string; read: ReadManifest }>()

  constructor(readonly options: ResolvedOptions) {
    // images hashed once per machine: the memo of verified files lives with the other derived data
    this.cache = new ImageCache(options.cacheDir, join(options.derivedCacheDir, 'verified.json'))
    // parsed manifests are kept per version of this package (bundled at build time)
    this.store = new ParsedStore(join(options.derivedCacheDir, 'manifests'), version)
    const filter = createFilter(options.include, options.exclude, { resolve: options.root })
    this.isManifest = (id) => MANIFEST_PATTERN.test(id) && filter(id)
  }

  get root(): string {
    return this.options.root
  }

  /** A path as messages show it. */
  display(file: string): string {
    return displayPath(this.root, file)
  }

  /** Every manifest under `dir` (default: the root), sorted; skips dependencies, VCS, build output and the cache. */
  async findManifests(dir = this.root): Promise<string[]> {
    const found: string[] = []
    const walk = async (current: string): Promise<void> => {
      const entries = await readdir(current, { withFileTypes: true }).catch(() => [])
      await Promise.all(
        entries.map(async (entry) => {
          const path = join(current, entry.name)
          if (entry.isDirectory()) {
            if (!SKIPPED_DIRS.has(entry.name) && path !== this.options.cacheDir) await walk(path)
          } else if (entry.isFile() && this.isManifest(path)) {
            found.push(path)
          }
        }),
      )
    }
    await walk(dir)
    return found.sort()
  }

  /**
   * Reads, parses and keys one manifest. A build that generates reads each manifest twice (the
   * project-wide bill guard, then its load), a dev server or watcher again on every change, and every
   * build the same files as the last: unchanged bytes are parsed and keyed once, and remembered on disk. Manifests with
   * reference images are keyed afresh, since those files may change under the same manifest.
   * Throws a `ManifestError` located at the manifest (`id`, `loc`), also when `file` is not a regular file of at
   * most `MANIFEST_LIMIT` bytes.
   */
  async read(file: string): Promise<ReadManifest> {
    const shown = this.display(file)
    const bytes = await readRegularFile(file, MANIFEST_LIMIT, (why) => {
      const message = `cannot read the manifest: a manifest is a regular file of at most ${megabytes(MANIFEST_LIMIT)}, and this one ${why}`
      throw new ManifestError(shown, [{ location: { file: shown, line: 1, column: 1 }, message }]).at(file)
    })
    const provider = this.options.provider.name
    const digest = this.store.digest(bytes, shown, provider)
    const known = this.parsed.get(file)
    if (known?.digest === digest) return known.read
    try {
      const stored = this.store.get(digest)
      const manifest = stored?.manifest ?? parseManifest(bytes, shown)
      if (this.options.dts) await writeDeclaration(manifest, file)
      const entries = stored?.entries ?? (await keyEntries(manifest, { manifestPath: file, root: this.root, provider }))
      const references = [...new Set(entries.flatMap((entry) => entry.request.image ?? []))]
      // The manifest itself is the module's own file, watched already; listing it would make Vite
      // record the module as its own importer, which stops HMR from propagating.
      const read = { file, manifest, entries, dependencies: references }
      if (references.length === 0) {
        this.parsed.set(file, { digest, read })
        if (!stored) await this.store.set(digest, { manifest, entries }).catch(() => {})
      } else {
        this.parsed.delete(file)
      }
      return read
    } catch (error) {
      throw error instanceof ManifestError ? error.at(file) : error
    }
  }

  /**
   * Reads every manifest of `files`. All their problems are collected: a command never acts on
   * half a project, and a preflight may choose to leave broken manifests to their own load.
   */
  async readAll(files: readonly string[]): Promise<{ entries: KeyedEntry[]; problems: ManifestError[] }> {
    const reads = await Promise.all(
      files.map((file) =>
        this.read(file).catch((error: unknown) => {
          if (error instanceof ManifestError) return error
          throw error
        }),
      ),
    )
    // in the order of `files`, not in the order the reads finished
    const problems = reads.filter((read) => read instanceof ManifestError)
    return { entries: reads.flatMap((read) => (read instanceof ManifestError ? [] : read.entries)), problems }
  }

  plan(entries: readonly KeyedEntry[]): Plan {
    const plan = planImages(entries, this.cache)
    // when something is to be made, the provider's polls learn how long predictions take from what is cached
    if (plan.missing.length > 0) this.options.provider.learn?.(plan.cached.map((image) => image.cached!.record))
    return plan
  }

  /** The journaled (paid, unfinished) predictions of `images` that this project's provider can resume. */
  async pending(images: readonly PlannedImage[]): Promise<Map<string, PendingPrediction>> {
    const found = new Map<string, PendingPrediction>()
    await Promise.all(
      images.map(async (image) => {
        const pending = await this.cache.readPending(image.key)
        if (pending?.provider === this.options.provider.name) found.set(image.key, pending)
      }),
    )
    return found
  }

  /** A scheduler over this project's provider and cache; `concurrency` from the options. */
  scheduler(options: { signal?: AbortSignal; onEvent?: (event: GenerateEvent) => void } = {}): Scheduler {
    return new Scheduler({ provider: this.options.provider, cache: this.cache, concurrency: this.options.concurrency, ...options })
  }
}

/** Every problem of every manifest, as one error (for commands and builds that stop on any). */
export function manifestProblems(problems: readonly ManifestError[]): ImagegenError {
  if (problems.length === 1) return problems[0]!
  return new ImagegenError('MANIFEST', `${problems.length} manifests have problems; nothing was done.\n${problems.map((p) => p.message).join('\n')}`)
}
