/**
 * The Atlas Cloud provider: submit (or resume), poll until the prediction ends, save the
 * output. The protocol details live in protocol.ts; this file holds the order of steps.
 */
import { ProviderError, type GenerationJob, type GenerationResult, type Provider } from '../types'
import { sleep } from './abort'
import { saveOutput } from './download'
import { predictionFailed, redact, seconds, type ErrorContext } from './errors'
import { callApi, type ApiClient } from './http'
import { buildSubmitBody, predictionPath, readPrediction, SUBMIT_PATH, type Prediction } from './protocol'
import { withRetries, type RetryPolicy } from './retry'

export interface AtlasProviderOptions {
  /** @default process.env.ATLASCLOUD_API_KEY */
  apiKey?: string
  /** @default process.env.ATLASCLOUD_BASE_URL ?? 'https://api.atlascloud.ai' */
  baseURL?: string
  /** Delay before the first poll; grows ×1.5 after each poll. @default 1000 */
  pollIntervalMs?: number
  /** @default 5000 */
  maxPollIntervalMs?: number
  /** Deadline for one image, from submit (or resume) to its last poll. @default 300_000 */
  timeoutMs?: number
  /** Deadline for one HTTP request, body included. @default 30_000 */
  requestTimeoutMs?: number
  /** Retries of a poll or download after a 429, a 5xx or a network error; submits are never retried. @default 4 */
  maxRetries?: number
  /** Wait before the first such retry, doubling up to 30 s, unless the service sends `Retry-After`. @default 1000 */
  retryDelayMs?: number
  /** Where `ATLASCLOUD_*` variables are read. @default process.env */
  env?: NodeJS.ProcessEnv
}

export const DEFAULT_BASE_URL = 'https://api.atlascloud.ai'
const MAX_RETRY_DELAY_MS = 30_000
/** A fresh prediction may answer 404/400 to polls for a few seconds (ATLAS_API.md). */
const WARM_UP_MS = 15_000
/** Transport failures that prove the submit never left this machine, so it was not billed. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'])

interface Settings {
  pollIntervalMs: number
  maxPollIntervalMs: number
  timeoutMs: number
  requestTimeoutMs: number
  retry: RetryPolicy
}

export function createAtlasProvider(options: AtlasProviderOptions = {}): Provider {
  const env = options.env ?? process.env
  const apiKey = (options.apiKey ?? env.ATLASCLOUD_API_KEY)?.trim() || undefined
  const baseURL = ((options.baseURL ?? env.ATLASCLOUD_BASE_URL)?.trim() || DEFAULT_BASE_URL).replace(/\/+$/, '')
  const settings: Settings = {
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    maxPollIntervalMs: options.maxPollIntervalMs ?? 5000,
    timeoutMs: options.timeoutMs ?? 300_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    retry: {
      retries: options.maxRetries ?? 4,
      baseDelayMs: options.retryDelayMs ?? 1000,
      maxDelayMs: MAX_RETRY_DELAY_MS,
    },
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
        return await generate({ baseURL: checkBaseURL(baseURL), apiKey, requestTimeoutMs: settings.requestTimeoutMs }, settings, job)
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

async function generate(client: ApiClient, settings: Settings, job: GenerationJob): Promise<GenerationResult> {
  const { signal } = job
  signal.throwIfAborted()
  if (job.request.image !== undefined) {
    throw new ProviderError('[imagegen] reference images (`image`) are not supported by the Atlas provider yet.')
  }
  const deadline = Date.now() + settings.timeoutMs

  let id = job.resumePredictionId
  let prediction: Prediction
  if (id !== undefined) {
    prediction = await pollUntilDone(client, settings, job, id, { deadline, fresh: false })
  } else {
    prediction = await submit(client, job)
    id = prediction.id
    if (prediction.state !== 'failed' && id !== undefined) await job.onSubmitted?.(id)
    if (prediction.state === 'pending') {
      if (id === undefined) {
        throw new ProviderError('[imagegen] Atlas Cloud accepted the submit but its answer has no prediction id to poll.')
      }
      prediction = await pollUntilDone(client, settings, job, id, { deadline, fresh: true })
    }
  }

  if (prediction.state === 'failed') throw predictionFailed(id, prediction.status, prediction.error)
  const output = prediction.outputs[0]
  if (!output) {
    const named = id ? ` \`${id}\`` : ''
    throw new ProviderError(
      `[imagegen] Atlas Cloud prediction${named} is \`${prediction.status ?? 'done'}\` but has no output image.`,
      { predictionId: id },
    )
  }
  const ctx: ErrorContext = { action: 'downloading the output', predictionId: id }
  const { contentType } = await saveOutput(output, job.destination, {
    signal,
    requestTimeoutMs: settings.requestTimeoutMs,
    retry: settings.retry,
    ctx,
  })
  return {
    predictionId: id,
    contentType,
    createdAt: prediction.createdAt,
    completedAt: prediction.completedAt,
    predictTime: prediction.predictTime,
  }
}

/**
 * Sent once, never retried: there is no idempotency key, so a second submit is a second
 * bill. When we cannot know whether it arrived, the message says so.
 */
async function submit(client: ApiClient, job: GenerationJob): Promise<Prediction> {
  const ctx: ErrorContext = { action: 'submitting a prediction' }
  const result = await callApi(client, { method: 'POST', path: SUBMIT_PATH, body: buildSubmitBody(job.request) }, job.signal, ctx)
  if (result.ok) return readPrediction(result.value.payload, result.value.body)

  const { error, code } = result
  const { status } = error.details
  if (status === 429 || (code !== undefined && NOT_SENT_CODES.has(code))) throw error
  if (status === undefined || status >= 500) {
    throw new ProviderError(
      `${error.message} The submit may have been accepted (and billed) anyway, so it was not sent again.`,
      { ...error.details, retryable: false },
    )
  }
  throw error
}

async function pollUntilDone(
  client: ApiClient,
  settings: Settings,
  job: GenerationJob,
  id: string,
  { deadline, fresh }: { deadline: number; fresh: boolean },
): Promise<Prediction> {
  const ctx: ErrorContext = { action: `polling prediction \`${id}\``, predictionId: id }
  const startedAt = Date.now()
  // a resumed prediction may be long done: look at once
  let wait = fresh ? settings.pollIntervalMs : 0
  let lastStatus = 'unknown'
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0) {
      throw new ProviderError(
        `[imagegen] Atlas Cloud prediction \`${id}\` did not finish within ${seconds(settings.timeoutMs)} (last status \`${lastStatus}\`).`,
        { predictionId: id, retryable: true },
      )
    }
    await sleep(Math.min(wait, left), job.signal)
    wait = Math.min(Math.max(wait, settings.pollIntervalMs) * 1.5, settings.maxPollIntervalMs)

    let prediction: Prediction
    try {
      const answer = await withRetries(
        () => callApi(client, { method: 'GET', path: predictionPath(id) }, job.signal, ctx),
        { policy: settings.retry, signal: job.signal, deadline },
      )
      prediction = readPrediction(answer.payload, answer.body)
    } catch (error) {
      const status = error instanceof ProviderError ? error.details.status : undefined
      const warmingUp = fresh && (status === 404 || status === 400) && Date.now() - startedAt < WARM_UP_MS
      if (!warmingUp) throw error
      continue
    }
    lastStatus = prediction.status ?? lastStatus
    if (prediction.state !== 'pending') return prediction
  }
}
