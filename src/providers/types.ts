/**
 * What an image service must do for the core. The core never builds a URL:
 * everything about a protocol lives behind this interface.
 */
export interface Provider {
  /** Stable name; part of every image key, so images of different providers never mix. */
  readonly name: string
  generate(job: GenerationJob): Promise<GenerationResult>
}

/** The fields that decide the pixels, as the provider receives them. */
export interface ProviderRequest {
  model: string
  prompt: string
  width: number
  height: number
  seed: number
  steps?: number
  guidance_scale?: number
  /** Raw provider fields, sent as they are. */
  input?: Record<string, unknown>
  /** Absolute path of a local reference image, already checked to lie inside the project. */
  image?: string
}

export interface GenerationJob {
  /** The spec's content key (for logs and journals; never sent). */
  key: string
  request: ProviderRequest
  signal: AbortSignal
  /** Absolute path the image bytes must be written to (a temp file the cache renames later). */
  destination: string
  /** A prediction already submitted (and paid for) by an earlier run: poll it, do not submit. */
  resumePredictionId?: string
  /** Called once a prediction is accepted (so billed), before the first poll. */
  onSubmitted?: (predictionId: string) => Promise<void> | void
}

export interface GenerationResult {
  predictionId?: string
  /** Content type the service declared, if any; the cache trusts the bytes, not this. */
  contentType?: string
  createdAt?: string
  completedAt?: string
  /** Seconds the service says it spent. */
  predictTime?: number
}

/** A failure the provider reports for one image (the prediction failed, was refused, …). */
export class ProviderError extends Error {
  override readonly name = 'ProviderError'
  constructor(
    message: string,
    readonly details: { predictionId?: string; status?: number; retryable?: boolean } = {},
  ) {
    super(message)
  }
}
