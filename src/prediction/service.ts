/** What a prediction service adapter gives the runtime (each call an HTTP request with a reader of its answer); timeouts and retries. */
import { ProviderError } from '../core/errors'
import { sleep } from '../core/sleep'
import type { GenerationResult, ProviderRequest } from '../providers/types'

export interface PredictionService {
  readonly name: string
  /** How messages name the service, e.g. `Atlas Cloud`. */
  readonly title: string
  /** Without a trailing slash. Also tells whose an uploaded URL is: a new service uploads again. */
  readonly baseURL: string
  /** The advice when the service (or its storage) cannot be reached. */
  readonly unreachableHint: string
  /** Throws a ProviderError when nothing can be sent at all (no key, a base URL that is no URL). */
  check(): void
  /** Removes what must never be shown (the key) from text the service or its storage sent. Called unbound. */
  readonly redact: (text: string) => string
  create(request: ProviderRequest, image?: string): Call<Prediction>
  get(id: string): Call<Prediction>
  /** Answered with the file's URL. */
  upload(file: Blob, name: string): Call<string>
}

/** What a request was for, as messages say it: `submitting a prediction`, `polling prediction \`pred_1\``, … */
export type Doing = { action: string; predictionId?: string }

/** Sent as a POST when it has a body (a string one as JSON), else as a GET; answers are asked for as JSON. */
export interface Call<T> extends Doing {
  url: string
  headers: Record<string, string>
  body?: string | FormData
  /** Reads an answer of any status: the value, or the service's refusal (its text redacted). */
  read(answer: Answer): T | ProviderError
}

export type Answer = { status: number; headers: Record<string, string | string[] | undefined>; text: string; json: unknown }

export type Output = { kind: 'url'; url: string } | { kind: 'data-url'; contentType?: string; base64: string } | { kind: 'base64'; base64: string }

export interface Prediction extends Pick<GenerationResult, 'createdAt' | 'completedAt' | 'predictTime'> {
  id?: string
  /** As the service wrote it, scrubbed. */
  status?: string
  /** `unknown`: a status the adapter has never seen; polled as `pending`, but only up to the deadline (see runtime.ts `poll`). */
  state: 'pending' | 'unknown' | 'succeeded' | 'failed'
  outputs: Output[]
  /** What the first output entry that is none of the above is, e.g. "a `file:` URL". */
  unusableOutput?: string
  error?: string
}

export type RetryPolicy = { retries: number; baseDelayMs: number; maxDelayMs: number }

/** One try: a value, or a failure (`code`: the transport's error code, when nothing was answered). */
export type Attempt<T> = { ok: true; value: T } | Failure
export type Failure = { ok: false; error: ProviderError; retryAfterMs?: number; code?: string }

export const USER_AGENT = 'unplugin-imagegen'
export const LATER = "The fault is on the service's side; run again later."

let undici: Promise<typeof import('undici')> | undefined
/** undici, loaded by the first request: a build with every image cached never needs it. */
export const loadUndici = () => (undici ??= import('undici'))

/** The wait the service asked for, in ms: `Retry-After` as seconds or an HTTP date, or `retry_after` (seconds) in a JSON body. */
export function readRetryAfter(header: string | string[] | undefined, body: unknown, now = Date.now()): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim()
  if (value) {
    const ms = Number.isFinite(Number(value)) ? Number(value) * 1000 : Date.parse(value) - now
    if (Number.isFinite(ms)) return Math.max(0, ms)
  }
  const record = (v: unknown) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined)
  const secs = record(body)?.retry_after ?? record(record(body)?.data)?.retry_after
  return (typeof secs === 'number' || typeof secs === 'string') && Number.isFinite(Number(secs)) ? Math.max(0, Number(secs) * 1000) : undefined
}

/**
 * What the service asked for (at most a minute), else capped exponential backoff with jitter (half to all
 * of the step), so that clients refused together do not come back together.
 */
export function retryDelay(retry: number, policy: RetryPolicy, retryAfterMs?: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, 60_000)
  const step = Math.min(policy.baseDelayMs * 2 ** retry, policy.maxDelayMs)
  return step / 2 + random() * (step / 2)
}

interface RetryOptions {
  policy: RetryPolicy
  signal: AbortSignal
  /** No wait past this (a `Date.now()` time): the last failure is thrown at once instead. */
  deadline?: number
  /** Whether a failure may be sent again. @default its error's `retryable` */
  resend?: (failure: Failure) => boolean
  /** The error to throw for a failure that may not be sent again (not one that ran out of retries). */
  refused?: (failure: Failure) => ProviderError
}

/** Runs `attempt` until it succeeds, fails for good, runs out of retries, or would wait past the deadline. */
export async function withRetries<T>(attempt: () => Promise<Attempt<T>>, options: RetryOptions): Promise<T> {
  const { policy, resend = (f) => f.error.retryable } = options
  for (let retry = 0; ; retry++) {
    const result = await attempt()
    if (result.ok) return result.value
    if (!resend(result)) throw options.refused?.(result) ?? result.error
    const wait = retryDelay(retry, policy, result.retryAfterMs)
    if (retry >= policy.retries || (options.deadline !== undefined && Date.now() + wait > options.deadline)) throw result.error
    await sleep(wait, options.signal)
  }
}

export class RequestTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`request timed out after ${timeoutMs} ms`)
  }
}

/** Runs `work` with a signal that aborts when `signal` does (rejecting with its reason) or after `ms` (RequestTimeoutError). */
export async function withTimeout<T>(signal: AbortSignal, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  signal.throwIfAborted()
  const timeout = AbortSignal.timeout(ms)
  try {
    return await work(AbortSignal.any([signal, timeout]))
  } catch (error) {
    if (signal.aborted) throw signal.reason
    throw timeout.aborted ? new RequestTimeoutError(ms) : error
  }
}

/** A request that got no answer. Only the error code is kept: undici's message and stack say nothing a user can act on. */
export function transportError(error: unknown, target: string, doing: Doing, hint: string): ProviderError {
  const details = { predictionId: doing.predictionId, retryable: true, hint }
  if (error instanceof RequestTimeoutError) {
    const reason = `${target} did not answer within ${seconds(error.timeoutMs)} (while ${doing.action}).`
    return new ProviderError(reason, { ...details, hint: 'Check the network, then run again.' })
  }
  return new ProviderError(`cannot reach ${target}: ${errorCode(error)} (while ${doing.action}).`, details)
}

/** `ECONNREFUSED`, `UND_ERR_SOCKET`, … from the error or its causes. */
export function errorCode(error: unknown): string {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code) return code
  }
  return error instanceof Error ? error.message.split('\n')[0]! : String(error)
}

export const formatBytes = (bytes: number): string =>
  bytes >= 1024 * 1024 ? `${Number((bytes / 1024 / 1024).toFixed(1))} MB` : `${Math.ceil(bytes / 1024)} KB`

export const seconds = (ms: number): string => (ms < 1000 ? `${ms}ms` : `${Number((ms / 1000).toFixed(1))}s`)
