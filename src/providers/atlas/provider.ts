/**
 * The Atlas Cloud provider: upload a reference, submit (or resume), poll until the
 * prediction ends, save the output. The protocol details live in protocol.ts; this file
 * holds the order of steps and the rules for paying once.
 */
import { ProviderError, type GenerationJob, type GenerationResult, type Provider } from '../types'
import { sleep } from '../../core/sleep'
import { MAX_OUTPUT_BYTES, OutputExpiredError, saveOutput } from './download'
import { adviseInstead, predictionFailed, redact, seconds, type ErrorContext } from './errors'
import { callApi, type ApiAnswer, type ApiClient } from './http'
import { AdaptiveLimiter, type Slot } from './limiter'
import { buildSubmitBody, predictionPath, readPrediction, SUBMIT_PATH, type Prediction } from './protocol'
import { retryDelay, withRetries, type Attempt, type RetryPolicy } from './retry'
import { ReferenceUploads } from './upload'

export interface AtlasProviderOptions {
  /** @default process.env.ATLASCLOUD_API_KEY */
  apiKey?: string
  /** @default process.env.ATLASCLOUD_BASE_URL ?? 'https://api.atlascloud.ai' */
  baseURL?: string
  /** Delay before the first poll; grows ×1.5 after each poll, up to `maxPollIntervalMs`. @default 1000 */
  pollIntervalMs?: number
  /** @default 5000 */
  maxPollIntervalMs?: number
  /** Deadline for one image, from submit (or resume) to its last poll. @default 300_000 */
  timeoutMs?: number
  /** Deadline for one HTTP request, body included. @default 30_000 */
  requestTimeoutMs?: number
  /**
   * Retries of one request after a 429, a 5xx or a network error. Polls, downloads and uploads
   * are retried so; a submit only when the service proves it did not take it (see `submit`). @default 4
   */
  maxRetries?: number
  /** Wait before the first such retry, doubling (with jitter) up to `maxRetryDelayMs`, unless the service sends `Retry-After`. @default 1000 */
  retryDelayMs?: number
  /** @default 30_000 */
  maxRetryDelayMs?: number
  /**
   * The largest output accepted; a bigger one is cut off as it arrives. API answers are cut off
   * at its base64 size plus 1 MB (one may carry an output inline). @default 52_428_800 (50 MB)
   */
  maxOutputBytes?: number
  /** After a submit, how long polls answered 404/400 are taken for a prediction not yet visible. @default 15_000 */
  warmUpMs?: number
  /** Uploaded reference images older than this are uploaded again. @default 86_400_000 (one day) */
  uploadMaxAgeMs?: number
  /** Where `ATLASCLOUD_*` variables are read. @default process.env */
  env?: NodeJS.ProcessEnv
}

export const DEFAULT_BASE_URL = 'https://api.atlascloud.ai'
/** Outputs expire 14 days after the submit (ATLAS_API.md): an older prediction is not worth a poll. */
export const OUTPUT_LIFETIME_MS = 14 * 24 * 60 * 60 * 1000
const POLL_GROWTH = 1.5
/** Transport failures that prove the submit never left this machine, so it was not billed. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'])
/** An output that answers 404 sooner than this after its submit has not expired: it is not paid for again. */
const EXPIRY_PLAUSIBLE_MS = 60 * 60 * 1000
/** For the submit, which only its request timeout may end (see `submit`). */
const UNABORTED = new AbortController().signal

interface Runtime {
  client: ApiClient
  pollIntervalMs: number
  maxPollIntervalMs: number
  timeoutMs: number
  requestTimeoutMs: number
  /** A fresh prediction may answer 404/400 to polls for a few seconds (ATLAS_API.md). */
  warmUpMs: number
  maxOutputBytes: number
  retry: RetryPolicy
  /** Shared by every job of this provider instance: the service's pushback is about all of them. */
  limiter: AdaptiveLimiter
  uploads: ReferenceUploads
}

export function createAtlasProvider(options: AtlasProviderOptions = {}): Provider {
  const env = options.env ?? process.env
  const apiKey = (options.apiKey ?? env.ATLASCLOUD_API_KEY)?.trim() || undefined
  const baseURL = ((options.baseURL ?? env.ATLASCLOUD_BASE_URL)?.trim() || DEFAULT_BASE_URL).replace(/\/+$/, '')
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000
  const retry: RetryPolicy = {
    retries: options.maxRetries ?? 4,
    baseDelayMs: options.retryDelayMs ?? 1000,
    maxDelayMs: options.maxRetryDelayMs ?? 30_000,
  }
  const limiter = new AdaptiveLimiter()
  const maxOutputBytes = options.maxOutputBytes ?? MAX_OUTPUT_BYTES
  // an answer may carry an output as base64 (4 characters per 3 bytes), with room for the rest
  const maxAnswerBytes = Math.ceil(maxOutputBytes / 3) * 4 + 1024 * 1024
  const client: ApiClient = { baseURL, apiKey: apiKey ?? '', requestTimeoutMs, maxAnswerBytes }
  const runtime: Runtime = {
    client,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    maxPollIntervalMs: options.maxPollIntervalMs ?? 5000,
    timeoutMs: options.timeoutMs ?? 300_000,
    requestTimeoutMs,
    warmUpMs: options.warmUpMs ?? 15_000,
    maxOutputBytes,
    retry,
    limiter,
    uploads: new ReferenceUploads(client, { retry, maxAgeMs: options.uploadMaxAgeMs ?? 24 * 60 * 60 * 1000 }, limiter),
  }

  return {
    name: 'atlas',
    async generate(job) {
      try {
        if (!apiKey) {
          throw new ProviderError(
            '[imagegen] no Atlas Cloud API key: set `ATLASCLOUD_API_KEY` (or the `apiKey` option) to generate images.',
          )
        }
        checkBaseURL(baseURL)
        return await generate(runtime, job)
      } catch (error) {
        // a service may echo what it was sent; the key must not travel on in a message.
        // Other errors (the caller's abort reason, fs errors) never saw the key.
        if (error instanceof ProviderError) {
          error.message = redact(error.message, apiKey)
          if (error.stack) error.stack = redact(error.stack, apiKey)
        }
        throw error
      }
    },
  }
}

function checkBaseURL(baseURL: string): string {
  let url: URL | undefined
  try {
    url = new URL(baseURL)
  } catch {}
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:')
    throw new ProviderError(`[imagegen] the Atlas Cloud base URL \`${baseURL}\` is not an http(s) URL; check \`ATLASCLOUD_BASE_URL\` or the \`baseURL\` option.`)
  return baseURL
}

/**
 * One image. A prediction already paid for is polled, not submitted again; when it turns out
 * to be gone (the service no longer knows it, or its output expired) the image is submitted
 * afresh, once: a second loss in one call is reported rather than paid for again.
 */
async function generate(rt: Runtime, job: GenerationJob): Promise<GenerationResult> {
  const { signal } = job
  signal.throwIfAborted()
  const imageURL = job.request.image === undefined ? undefined : await rt.uploads.urlFor(job.request.image, job.uploads, signal)
  const body = buildSubmitBody(job.request, imageURL)

  let resume = resumable(job)
  let startedAfresh = false
  let deadline: number | undefined
  for (;;) {
    let slot: Slot
    let id: string | undefined
    let prediction: Prediction | undefined
    let submittedAt: number
    if (resume) {
      slot = await rt.limiter.acquire(signal)
      ;({ id, submittedAt } = resume)
    } else {
      ;({ slot, prediction } = await submit(rt, job, body))
      id = prediction.id
      submittedAt = Date.now()
    }
    deadline ??= Date.now() + rt.timeoutMs
    try {
      if (prediction && prediction.state !== 'failed' && id !== undefined) await job.onSubmitted?.(id)
      signal.throwIfAborted()
      if (!prediction || prediction.state === 'pending') {
        if (id === undefined) {
          throw new ProviderError('[imagegen] Atlas Cloud accepted the submit but its answer has no prediction id to poll. Run again; if it persists, the API has changed.')
        }
        try {
          prediction = await pollUntilDone(rt, job, id, { deadline, submittedAt, fresh: !resume })
        } catch (error) {
          if (resume && !startedAfresh && isUnknownPrediction(error)) {
            // the journal outlived the prediction: what was paid is lost either way
            resume = undefined
            startedAfresh = true
            continue
          }
          throw error
        }
      }

      if (prediction.state === 'failed') throw predictionFailed(id, prediction.status, prediction.error)
      const output = prediction.outputs[0]
      if (!output) {
        const named = id ? ` \`${id}\`` : ''
        // never fetched: a `file:` output would read this machine's files, `ftp:` and the like are no storage of Atlas's
        const why = prediction.unusableOutput
          ? `its output is ${prediction.unusableOutput}; only http(s) URLs, data: URLs and base64 are accepted. Nothing was cached; run again to generate it afresh.`
          : 'has no output image. Run again to generate it afresh.'
        throw new ProviderError(`[imagegen] Atlas Cloud prediction${named} is \`${prediction.status ?? 'done'}\` but ${why}`, { predictionId: id, retryable: false, predictionOver: true })
      }
      const ctx: ErrorContext = { action: 'downloading the output', predictionId: id }
      let contentType: string
      try {
        ;({ contentType } = await saveOutput(output, job.destination, {
          signal,
          requestTimeoutMs: rt.requestTimeoutMs,
          retry: rt.retry,
          maxBytes: rt.maxOutputBytes,
          ctx,
          limiter: rt.limiter,
        }))
      } catch (error) {
        const age = Date.now() - submittedAt
        if (error instanceof OutputExpiredError && age >= EXPIRY_PLAUSIBLE_MS && !startedAfresh) {
          // an output old enough to have expired (they last 14 days): made again, once
          resume = undefined
          startedAfresh = true
          continue
        }
        if (error instanceof OutputExpiredError) {
          // Too recent to have expired: storage that has not caught up, most likely. Paying again
          // now would be a guess; the journal keeps the prediction for a rerun.
          throw new ProviderError(
            `[imagegen] the output of Atlas Cloud prediction \`${id}\` answered 404 only ${Math.round(age / 1000)} s after its submit ` +
              '(outputs last 14 days). It is paid for and journaled: run again to download it; should it still be missing ' +
              'an hour after its submit, a run generates it afresh.',
            { predictionId: id, status: 404, retryable: true },
          )
        }
        throw error
      }
      rt.limiter.succeeded()
      return {
        predictionId: id,
        contentType,
        createdAt: prediction.createdAt,
        completedAt: prediction.completedAt,
        predictTime: prediction.predictTime,
      }
    } finally {
      slot.release()
    }
  }
}

/** The journalled prediction, unless it is too old to have an output left. */
function resumable(job: GenerationJob): { id: string; submittedAt: number } | undefined {
  if (job.resumePredictionId === undefined) return undefined
  const submittedAt = job.resumeSubmittedAt === undefined ? Number.NaN : Date.parse(job.resumeSubmittedAt)
  // unknown age: old enough that a 404 means gone, not warming up
  if (!Number.isFinite(submittedAt)) return { id: job.resumePredictionId, submittedAt: 0 }
  if (Date.now() - submittedAt >= OUTPUT_LIFETIME_MS) return undefined
  return { id: job.resumePredictionId, submittedAt }
}

function isUnknownPrediction(error: unknown): boolean {
  const status = error instanceof ProviderError ? error.details.status : undefined
  return status === 404 || status === 410 || status === 400
}

/**
 * Sends the submit and holds a place in flight for the prediction it starts.
 *
 * There is no idempotency key: every submit that reaches the service is billed, and a client
 * that sends one again when unsure pays twice. So it is sent again only when the service
 * proves it did not take it:
 * - 429: the service refused it before doing anything;
 * - 503 with `Retry-After` (or `retry_after`): the service itself saying it is busy and when to
 *   come back. A bare 503 is not enough: proxies answer 503 after forwarding a request too
 *   ("upstream reset before headers"), and that one may have been taken and billed;
 * - a connection that failed before the request was written (refused, no DNS, connect timeout).
 * Everything else is ambiguous and is never repeated: 500/502/504 and bare 503s (a gateway may
 * have passed it on before failing), a connection dropped or a timeout after the body was sent
 * (it may have arrived), an answer we could not read.
 *
 * The submit itself is not cut short by the job's signal (Ctrl-C, a closing dev server): an
 * answer already on its way carries a billed prediction's id, which must reach the journal.
 * Only the request timeout ends it; the abort is honoured right after.
 *
 * While the service is refusing, the place in flight is given back during the wait, so the
 * limiter's shrinking limit applies to the retry too.
 */
async function submit(rt: Runtime, job: GenerationJob, body: Record<string, unknown>): Promise<{ slot: Slot; prediction: Prediction }> {
  const ctx: ErrorContext = { action: 'submitting a prediction' }
  for (let retry = 0; ; retry++) {
    const slot = await rt.limiter.acquire(job.signal)
    let result: Attempt<ApiAnswer>
    try {
      result = await call(rt, { method: 'POST', path: SUBMIT_PATH, body }, UNABORTED, ctx)
    } catch (error) {
      slot.release()
      throw error
    }
    if (result.ok) return { slot, prediction: readPrediction(result.value.payload, result.value.body) }
    slot.release()

    const { error, code, retryAfterMs } = result
    const { status } = error.details
    const notTaken =
      status === 429 || (status === 503 && retryAfterMs !== undefined) || (status === undefined && code !== undefined && NOT_SENT_CODES.has(code))
    if (notTaken) {
      if (retry >= rt.retry.retries) throw error
      await sleep(retryDelay(retry, rt.retry, retryAfterMs), job.signal)
      continue
    }
    if (status === undefined || status >= 500) {
      throw adviseInstead(
        error,
        'The submit may have been accepted (and billed) anyway, so it was not sent again: ' +
          'if no new prediction shows in your Atlas Cloud dashboard, run again.',
        { ...error.details, retryable: false },
      )
    }
    throw error
  }
}

async function pollUntilDone(
  rt: Runtime,
  job: GenerationJob,
  id: string,
  { deadline, submittedAt, fresh }: { deadline: number; submittedAt: number; fresh: boolean },
): Promise<Prediction> {
  const ctx: ErrorContext = { action: `polling prediction \`${id}\``, predictionId: id }
  // a resumed prediction may be long done: look at once
  let wait = fresh ? rt.pollIntervalMs : 0
  let lastStatus = 'unknown'
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0) {
      throw new ProviderError(
        `[imagegen] Atlas Cloud prediction \`${id}\` did not finish within ${seconds(rt.timeoutMs)} (last status \`${lastStatus}\`). ` +
          'It is paid for: the next run polls it again instead of submitting; raise `timeoutMs` to wait longer.',
        { predictionId: id, retryable: true },
      )
    }
    await sleep(Math.min(wait, left), job.signal)
    wait = nextPollWait(wait, rt)

    let prediction: Prediction
    try {
      const answer = await withRetries(() => call(rt, { method: 'GET', path: predictionPath(id) }, job.signal, ctx), {
        policy: rt.retry,
        signal: job.signal,
        deadline,
      })
      prediction = readPrediction(answer.payload, answer.body)
    } catch (error) {
      const status = error instanceof ProviderError ? error.details.status : undefined
      const warmingUp = (status === 404 || status === 400) && Date.now() - submittedAt < rt.warmUpMs
      if (!warmingUp) throw error
      continue
    }
    lastStatus = prediction.status ?? lastStatus
    if (prediction.state !== 'pending') return prediction
  }
}

/** The wait after one of `previous` ms: the first interval, then ×1.5 up to the cap. */
export function nextPollWait(previous: number, { pollIntervalMs, maxPollIntervalMs }: { pollIntervalMs: number; maxPollIntervalMs: number }): number {
  if (previous < pollIntervalMs) return pollIntervalMs
  return Math.min(previous * POLL_GROWTH, maxPollIntervalMs)
}

/** One API request; a 429 tells the limiter. */
async function call(rt: Runtime, request: Parameters<typeof callApi>[1], signal: AbortSignal, ctx: ErrorContext): Promise<Attempt<ApiAnswer>> {
  const mark = rt.limiter.mark()
  const result = await callApi(rt.client, request, signal, ctx)
  if (!result.ok && result.error.details.status === 429) rt.limiter.rateLimited(mark)
  return result
}
