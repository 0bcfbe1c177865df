/**
 * Sending again what the service refused for now: capped exponential backoff with jitter,
 * or the wait it asked for. Which failures may be sent again is the caller's to say: a submit
 * is billed each time it arrives (see runtime.ts `submit`).
 */
import type { ProviderError } from '../core/errors'
import { sleep } from '../core/sleep'

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number
  /** Wait before the first retry; doubles each time. */
  baseDelayMs: number
  maxDelayMs: number
}

/** One try: a value, or a failure (`code`: the transport's error code, when nothing was answered). */
export type Attempt<T> = { ok: true; value: T } | Failure
export interface Failure {
  ok: false
  error: ProviderError
  retryAfterMs?: number
  code?: string
}

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
 * What the service asked for (at most a minute), else capped exponential backoff with jitter: a
 * random wait between half and all of the step, so that clients refused together do not come back together.
 */
export function retryDelay(retry: number, policy: RetryPolicy, retryAfterMs?: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, 60_000)
  const step = Math.min(policy.baseDelayMs * 2 ** retry, policy.maxDelayMs)
  return step / 2 + random() * (step / 2)
}

export interface RetryOptions {
  policy: RetryPolicy
  /** Ends a wait between attempts at once, with its reason. */
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
