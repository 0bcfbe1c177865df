import { rm } from 'node:fs/promises'
import pLimit, { type LimitFunction } from 'p-limit'
import { ProviderError, type Provider } from '../providers/types'
import type { CachedImage, ImageCache } from './cache'
import type { KeyedEntry } from './entries'
import { formatLocation, ImagegenError } from './errors'
import { readImageInfo } from './image-info'
import { acquireLock } from './lock'

/** One image to have: a key and every manifest entry that asks for it. */
export interface PlannedImage {
  key: string
  entries: KeyedEntry[]
  cached?: CachedImage
}

export interface Plan {
  images: PlannedImage[]
  cached: PlannedImage[]
  missing: PlannedImage[]
}

export type GenerateEvent =
  | { type: 'start'; total: number }
  | { type: 'submitted'; image: PlannedImage; predictionId: string; resumed: boolean }
  | { type: 'generated'; image: PlannedImage; cached: CachedImage; seconds: number }
  | { type: 'failed'; image: PlannedImage; error: Error }
  | { type: 'finish'; generated: number; failed: number; seconds: number }

export interface SchedulerOptions {
  provider: Provider
  cache: ImageCache
  /** Predictions run at once. */
  concurrency: number
  /** New images this scheduler may generate in all; more fails before anything is submitted. */
  maxNewImages: number
  signal?: AbortSignal
  onEvent?: (event: GenerateEvent) => void
}

/** Groups entries by key and asks the cache which keys it already holds. */
export async function planImages(entries: readonly KeyedEntry[], cache: ImageCache): Promise<Plan> {
  const byKey = new Map<string, PlannedImage>()
  for (const entry of entries) {
    const image = byKey.get(entry.key)
    if (image) image.entries.push(entry)
    else byKey.set(entry.key, { key: entry.key, entries: [entry] })
  }
  const images = [...byKey.values()]
  for (const image of images) image.cached = cache.lookupSync(image.key)
  return {
    images,
    cached: images.filter((image) => image.cached),
    missing: images.filter((image) => !image.cached),
  }
}

export function describeEntry(entry: KeyedEntry): string {
  return `${formatLocation(entry.location)}${entry.name === undefined ? '' : ` (\`${entry.name}\`)`}`
}

/** Every image that failed, reported together once the others have finished. */
export class GenerationError extends ImagegenError {
  override name = 'GenerationError'
  constructor(
    readonly failures: { image: PlannedImage; error: Error }[],
    readonly generated: CachedImage[],
  ) {
    super(
      `${failures.length} image${failures.length === 1 ? '' : 's'} could not be generated` +
        (generated.length ? ` (${generated.length} other${generated.length === 1 ? ' was' : 's were'} generated and cached)` : '') +
        ':\n' +
        failures
          .map(({ image, error }) => `  ${image.entries.map(describeEntry).join(', ')}: ${error.message.replace(/^\[imagegen\] /, '')}`)
          .join('\n'),
    )
  }
}

export class BudgetError extends ImagegenError {
  override name = 'BudgetError'
  constructor(wanted: number, allowed: number, limit: number) {
    super(
      `${wanted} new image${wanted === 1 ? '' : 's'} would be generated, more than \`maxNewImages\` allows ` +
        `(${limit}${allowed < limit ? `, ${allowed} left in this run` : ''}). Nothing was submitted. ` +
        `To allow it, raise \`maxNewImages\` in the plugin options or run \`imagegen generate --max-new ${wanted}\`.`,
    )
  }
}

/**
 * Generates missing images: at most `concurrency` predictions at once, one job per
 * key however many callers ask for it, each image committed to the cache the moment
 * it arrives. State lives in the instance, one per plugin instance or CLI run.
 */
export class Scheduler {
  private readonly limit: LimitFunction
  private readonly inFlight = new Map<string, Promise<CachedImage>>()
  private budget: number

  constructor(private readonly options: SchedulerOptions) {
    this.limit = pLimit(options.concurrency)
    this.budget = options.maxNewImages
  }

  /**
   * Generates every image of `missing`, or none when they exceed the budget.
   * Throws a `GenerationError` listing every failure after the others finished.
   */
  async generate(missing: readonly PlannedImage[]): Promise<CachedImage[]> {
    const fresh = missing.filter((image) => !this.inFlight.has(image.key))
    if (fresh.length > this.budget) throw new BudgetError(fresh.length, this.budget, this.options.maxNewImages)
    this.budget -= fresh.length

    const started = performance.now()
    const emit = this.options.onEvent ?? (() => {})
    emit({ type: 'start', total: missing.length })
    const settled = await Promise.allSettled(missing.map((image) => this.run(image)))
    const generated: CachedImage[] = []
    const failures: { image: PlannedImage; error: Error }[] = []
    settled.forEach((result, i) => {
      if (result.status === 'fulfilled') generated.push(result.value)
      else failures.push({ image: missing[i]!, error: result.reason as Error })
    })
    emit({ type: 'finish', generated: generated.length, failed: failures.length, seconds: (performance.now() - started) / 1000 })
    if (failures.length > 0) throw new GenerationError(failures, generated)
    return generated
  }

  private run(image: PlannedImage): Promise<CachedImage> {
    let job = this.inFlight.get(image.key)
    if (!job) {
      job = this.limit(() => this.generateOne(image))
      this.inFlight.set(image.key, job)
      // Forget the job once settled, so a failed key can be tried again later.
      job.then(
        () => this.inFlight.delete(image.key),
        () => this.inFlight.delete(image.key),
      )
    }
    return job
  }

  private async generateOne(image: PlannedImage): Promise<CachedImage> {
    const { cache, signal } = this.options
    const emit = this.options.onEvent ?? (() => {})
    signal?.throwIfAborted()
    const started = performance.now()
    const { key } = image
    // Another process (a dev server, a CLI run) may be making this very image: wait for it.
    const release = await acquireLock(cache.locksDir, key, { signal })
    try {
      const made = await cache.lookup(key)
      if (made) {
        emit({ type: 'generated', image, cached: made, seconds: (performance.now() - started) / 1000 })
        return made
      }
      return await this.submitAndSave(image, started)
    } finally {
      await release()
    }
  }

  private async submitAndSave(image: PlannedImage, started: number): Promise<CachedImage> {
    const { provider, cache, signal } = this.options
    const emit = this.options.onEvent ?? (() => {})
    const { key } = image
    const { request, pixels } = image.entries[0]!
    const pending = await cache.readPending(key)
    const resumed = pending?.provider === provider.name ? pending : undefined
    const resumePredictionId = resumed?.predictionId
    if (resumePredictionId) emit({ type: 'submitted', image, predictionId: resumePredictionId, resumed: true })
    const temp = await cache.tempFile(key)
    try {
      const result = await provider.generate({
        key,
        request,
        signal: signal ?? new AbortController().signal,
        destination: temp,
        resumePredictionId,
        resumeSubmittedAt: resumed?.submittedAt,
        uploads: cache.uploads(provider.name),
        onSubmitted: async (predictionId) => {
          await cache.writePending({ key, provider: provider.name, predictionId, submittedAt: new Date().toISOString() })
          emit({ type: 'submitted', image, predictionId, resumed: false })
        },
      })
      const info = await readImageInfo(temp)
      if (!info) {
        throw new ProviderError(
          `[imagegen] ${provider.name} delivered something that is not a PNG, JPEG, WebP or AVIF image` +
            (result.predictionId ? ` (prediction \`${result.predictionId}\`)` : '') +
            '; nothing was cached. Run again to generate it afresh.',
          { predictionId: result.predictionId, retryable: false, predictionOver: true },
        )
      }
      const cached = await cache.commit(temp, info, {
        key,
        spec: pixels,
        provider: provider.name,
        model: pixels.model,
        predictionId: result.predictionId,
        createdAt: result.createdAt,
        completedAt: result.completedAt ?? new Date().toISOString(),
        predictTime: result.predictTime,
      })
      await cache.clearPending(key)
      emit({ type: 'generated', image, cached, seconds: (performance.now() - started) / 1000 })
      return cached
    } catch (error) {
      await rm(temp, { force: true })
      // Only a prediction that is over (failed, gone, its output unusable) leaves the journal;
      // anything else (a refused poll, a proxy's page, the network, an abort) keeps it, so the
      // next run resumes the paid prediction instead of paying again.
      if (error instanceof ProviderError && error.details.predictionOver) await cache.clearPending(key)
      emit({ type: 'failed', image, error: error as Error })
      throw error
    }
  }
}
