/** What an image service must do for the core, which never builds a URL: every protocol lives behind this interface. */
export interface Provider {
  /** Stable name; part of every image key, so images of different providers never mix. */
  readonly name: string
  generate(job: GenerationJob): Promise<GenerationResult>
  /**
   * Told what finished predictions took (the cache records the plan read; others' are skipped by `provider`), so the
   * first polls of a build land when its images are likely done. Optional; the core may call it any number of times.
   */
  learn?(records: Iterable<PredictionTiming>): void
}

/** What a cache record keeps of a finished prediction's timing. */
export interface PredictionTiming extends Pick<GenerationResult, 'createdAt' | 'completedAt' | 'predictTime'> {
  provider?: string
  model?: string
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

/** A prediction an earlier run paid for: written through `onSubmitted`, read back as `resume`; the core reads (and shows) only `id`. */
export interface ResumeState {
  id: string
  [field: string]: unknown
}

export interface GenerationJob {
  /** The spec's content key (for logs and journals; never sent). */
  key: string
  request: ProviderRequest
  signal: AbortSignal
  /** Absolute path the image bytes must be written to (a temp file the cache renames later). */
  destination: string
  /** A prediction already submitted (and paid for) by an earlier run: poll it, do not submit. */
  resume?: ResumeState
  /**
   * Called once a prediction is accepted (so billed), before the first poll; again if the provider has to
   * submit afresh (the old prediction was gone). The core journals it before this resolves.
   */
  onSubmitted?: (state: ResumeState) => Promise<void> | void
  /**
   * Called once the prediction is over at the service and only its output is left to fetch, when no new submit can
   * follow for this job. The scheduler then starts the next prediction: `concurrency` bounds predictions running at the
   * service, not downloads, so a round's downloads and commits overlap the next round's predictions.
   */
  onEnded?: () => void
  /** A request was refused with 429; `sentAt` is when it was sent (`performance.now()`). The scheduler then runs fewer at once. */
  onRateLimited?: (sentAt: number) => void
  /** Where the provider remembers uploaded reference images across runs (kept in the cache). */
  uploads?: UploadMemo
}

/** A reference image the provider uploaded, by the SHA-256 of its bytes. */
export interface UploadRecord {
  url: string
  /** ISO date of the upload: uploaded files expire, so old URLs are uploaded again. */
  uploadedAt: string
  /** Which service the URL belongs to (e.g. the base URL), so a change of service uploads again. */
  service?: string
}

export interface UploadMemo {
  get(sha256: string): Promise<UploadRecord | undefined>
  set(sha256: string, record: UploadRecord): Promise<void>
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
