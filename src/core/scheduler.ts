import { rm } from 'node:fs/promises'
import type { LimitFunction } from 'p-limit'
import type { Provider, ProviderRequest, ResumeState } from '../providers/types'
import { DamagedEntryError, type CachedImage, type ImageCache } from './cache'
import { entryLabel } from './entries'
import { ImagegenError, plural, ProviderError } from './errors'
import { decodeImage, ImageReadError, readImageInfo, type ImageInfo } from './image-info'
import { acquireLock } from './lock'
import type { PlannedImage } from './plan'

export type GenerateEvent =
  | { type: 'start'; total: number }
  | { type: 'waiting'; image: PlannedImage; holder: string }
  | { type: 'submitted'; image: PlannedImage; predictionId: string; resumed: boolean }
  | { type: 'generated'; image: PlannedImage; cached: CachedImage; seconds: number; elsewhere?: true }
  | { type: 'failed'; image: PlannedImage; error: Error }
  | { type: 'warning'; image: PlannedImage; message: string }
  | { type: 'finish'; generated: number; failed: number; seconds: number }

/** An image this run has now; `elsewhere` when another process made it while this one waited for its lock (cached here, not generated). */
export interface MadeImage extends CachedImage {
  elsewhere?: true
}

export interface SchedulerOptions {
  provider: Provider
  cache: ImageCache
  /** Predictions run at once, at most; fewer for a while after the service answers 429. */
  concurrency: number
  signal?: AbortSignal
  onEvent?: (event: GenerateEvent) => void
}

/** Every image that failed, reported together once the others have finished. */
export class GenerationError extends ImagegenError {
  override name = 'GenerationError'
  constructor(
    readonly failures: { image: PlannedImage; error: Error }[],
    readonly generated: MadeImage[],
  ) {
    const others = generated.length ? ` (${plural(generated.length, 'other was', 'others were')} generated and cached)` : ''
    const lines = failures.map(({ image, error }) => `  ${image.entries.map(entryLabel).join(', ')}: ${error.message}`)
    super('GENERATION', `${plural(failures.length, 'image')} could not be generated${others}:\n${lines.join('\n')}`)
  }
}

/**
 * Generates missing images: one job per key however many callers ask for it, each image
 * committed to the cache the moment it arrives, at most `concurrency` predictions running at the
 * service at once (downloads of those already over do not count). That limit is
 * the only one: a 429 from the service halves it (once per burst), and each image that
 * arrives raises it by one again, up to `concurrency` (AIMD, as TCP does). The bill guard is
 * the caller's (see plan.ts). State lives in the instance, one per plugin instance or CLI run.
 */
export class Scheduler {
  /** p-limit, loaded by the first `generate`: a build with every image cached never loads it. */
  private limit: LimitFunction | undefined
  private limiter: Promise<LimitFunction> | undefined
  private readonly inFlight = new Map<string, Promise<MadeImage>>()
  /** When the limit was last lowered: a 429 to a request sent before then is news already acted on. */
  private loweredAt = Number.NEGATIVE_INFINITY

  constructor(private readonly options: SchedulerOptions) {}

  /** The limit in force now (lower than `concurrency` while the service pushes back). */
  get concurrency(): number {
    return this.limit?.concurrency ?? this.options.concurrency
  }

  /**
   * Generates every image of `missing`; throws a `GenerationError` listing every failure after the others finished,
   * or before anything is submitted the cache's error when its journal cannot be written.
   */
  async generate(missing: readonly PlannedImage[]): Promise<MadeImage[]> {
    const started = performance.now()
    // one limiter however many calls wait for it
    this.limit ??= await (this.limiter ??= import('p-limit').then(({ default: pLimit }) => pLimit(this.options.concurrency)))
    if (missing.length > 0) await this.options.cache.prepare()
    this.emit({ type: 'start', total: missing.length })
    const settled = await Promise.allSettled(missing.map((image) => this.run(image)))
    const generated: MadeImage[] = []
    const failures: { image: PlannedImage; error: Error }[] = []
    settled.forEach((result, i) => {
      if (result.status === 'fulfilled') generated.push(result.value)
      else failures.push({ image: missing[i]!, error: result.reason as Error })
    })
    this.emit({ type: 'finish', generated: generated.filter((image) => !image.elsewhere).length, failed: failures.length, seconds: (performance.now() - started) / 1000 })
    if (failures.length > 0) throw new GenerationError(failures, generated)
    return generated
  }

  private emit(event: GenerateEvent): void {
    this.options.onEvent?.(event)
  }

  private run(image: PlannedImage): Promise<MadeImage> {
    let job = this.inFlight.get(image.key)
    if (!job) {
      // A slot is held until the prediction is over at the service (`onEnded`), or else until the job settles: the
      // download, check and commit that follow do not keep the next prediction waiting.
      job = new Promise<MadeImage>((resolve, reject) => {
        void this.limit!(
          () =>
            new Promise<void>((slotFree) => {
              this.generateOne(image, slotFree).then(resolve, reject).finally(slotFree)
            }),
        )
      })
      this.inFlight.set(image.key, job)
      // Forget the job once settled, so a failed key can be tried again later.
      const forget = () => this.inFlight.delete(image.key)
      job.then(forget, forget)
    }
    return job
  }

  /** The service refused a request sent at `sentAt` (a `performance.now()` time) with 429. */
  private rateLimited(sentAt: number): void {
    if (sentAt < this.loweredAt) return
    this.limit!.concurrency = Math.max(1, Math.floor(this.limit!.concurrency / 2))
    this.loweredAt = performance.now()
  }

  private async generateOne(image: PlannedImage, slotFree: () => void): Promise<MadeImage> {
    const { cache, signal } = this.options
    signal?.throwIfAborted()
    const started = performance.now()
    // Another process (a dev server, a CLI run) may be making this very image: wait for it.
    const release = await acquireLock(cache.locksDir, image.key, {
      signal,
      onWait: (holder) => this.emit({ type: 'waiting', image, holder }),
    })
    try {
      const made = this.lookup(image)
      if (made) {
        this.emit({ type: 'generated', image, cached: made, seconds: (performance.now() - started) / 1000, elsewhere: true })
        return { ...made, elsewhere: true }
      }
      return await this.submitAndSave(image, started, slotFree)
    } finally {
      await release()
    }
  }

  /** The entry as the cache holds it now; a damaged one counts as absent only when `--force` asked to pay again. */
  private lookup(image: PlannedImage): CachedImage | undefined {
    try {
      return this.options.cache.lookup(image.key)
    } catch (error) {
      if (error instanceof DamagedEntryError && image.force) return undefined
      throw error
    }
  }

  private async submitAndSave(image: PlannedImage, started: number, slotFree: () => void): Promise<CachedImage> {
    const { provider, cache, signal } = this.options
    const { key } = image
    const { request, pixels } = image.entries[0]!
    const pending = await cache.readPending(key)
    const resume = pending?.provider === provider.name ? pending.state : undefined
    if (resume) this.emit({ type: 'submitted', image, predictionId: resume.id, resumed: true })
    const temp = await cache.tempFile(key)
    try {
      const result = await provider.generate({
        key,
        request,
        signal: signal ?? new AbortController().signal,
        destination: temp,
        resume,
        uploads: cache.uploads(provider.name),
        onSubmitted: async (state: ResumeState) => {
          this.emit({ type: 'submitted', image, predictionId: state.id, resumed: false })
          // Paid for now: a journal that cannot be written must not abandon it. It is polled and saved all the same,
          // and its id shown, so that nothing paid for is lost without a trace.
          await cache.writePending({ key, provider: provider.name, submittedAt: new Date().toISOString(), state }).catch((error: NodeJS.ErrnoException) => {
            const message = `prediction \`${state.id}\` was submitted but cannot be journaled (${error.code ?? error.message}); it is polled and saved by this run only: if this run stops, that prediction is not resumed.`
            this.emit({ type: 'warning', image, message })
          })
        },
        onEnded: slotFree,
        onRateLimited: (sentAt) => this.rateLimited(sentAt),
      })
      const info = await this.checkOutput(temp, request, result.predictionId)
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
      this.limit!.concurrency = Math.min(this.options.concurrency, this.limit!.concurrency + 1)
      this.emit({ type: 'generated', image, cached, seconds: (performance.now() - started) / 1000 })
      return cached
    } catch (error) {
      await rm(temp, { force: true })
      // Only a prediction that is over (failed, gone, its output unusable) leaves the journal;
      // anything else (a refused poll, a proxy's page, the network, an abort) keeps it, so the
      // next run resumes the paid prediction instead of paying again.
      if (error instanceof ProviderError && error.predictionOver) await cache.clearPending(key)
      this.emit({ type: 'failed', image, error: error as Error })
      throw error
    }
  }

  /**
   * What arrived, checked before it is committed: an image of a format we take (else the prediction is over), near the
   * asked size (more than 2× off either way, or over sharp's pixel limit, is refused: Atlas rounds sizes to multiples
   * of 16, ATLAS_API.md), and decoding whole (else it was cut short: kept journaled, downloaded again next run). sharp
   * failing to load is our install's fault: `loadSharp`'s error, the journal kept.
   */
  private async checkOutput(temp: string, asked: ProviderRequest, predictionId: string | undefined): Promise<ImageInfo> {
    const delivered = `what ${this.options.provider.name} delivered${predictionId ? ` for prediction \`${predictionId}\`` : ''}`
    const over = (reason: string) => new ProviderError(`${delivered} ${reason}; nothing was cached.`, { hint: 'Run again to generate it afresh.', predictionId, predictionOver: true })
    try {
      const info = await readImageInfo(temp)
      const far = (got: number, want: number) => got > 2 * want || 2 * got < want
      if (far(info.width, asked.width) || far(info.height, asked.height)) {
        throw over(`is ${info.width} × ${info.height} pixels for a ${asked.width} × ${asked.height} spec, more than twice off`)
      }
      await decodeImage(temp)
      return info
    } catch (error) {
      if (!(error instanceof ImageReadError)) throw error
      if (error.stage === 'format') throw over(`is not a PNG, JPEG, WebP or AVIF image (${error.message})`)
      if (error.stage === 'too-large') throw over(`is refused: ${error.message}`)
      const hint = 'It is paid for and kept journaled: the next run downloads it again without a new submit.'
      throw new ProviderError(`${delivered} does not decode whole (${error.message}): it was cut short or corrupted on the way; nothing was cached.`, { hint, predictionId, retryable: true })
    }
  }
}
