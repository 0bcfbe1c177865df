/**
 * Retrying requests that are safe to repeat: polls, downloads and uploads. A submit is
 * billed each time it arrives, so provider.ts decides case by case whether one may be
 * sent again (only when the service proves it was not handled).
 */
import type { ProviderError } from '../types'
import { sleep } from '../../core/sleep'
import { isRecord } from './protocol'

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number
  /** Wait before the first retry; doubles each time. */
  baseDelayMs: number
  maxDelayMs: number
}

/** A service asking for more than this is treated as asking for this. */
export const MAX_RETRY_AFTER_MS = 60_000

/**
 * One try: a value, or an error that the loop retries when `error.details.retryable`
 * (`code`: the transport error code, when the request got no answer at all).
 */
export type Attempt<T> =
  | { ok: true; value: T }
  | { ok: false; error: ProviderError; retryAfterMs?: number; code?: string }

/**
 * The wait the service asked for, in ms: `Retry-After` as seconds or an HTTP date, or
 * `retry_after` (seconds) in a JSON body.
 */
export function readRetryAfter(header: string | string[] | undefined, body: unknown, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (value !== undefined && value.trim() !== '') {
    const secs = Number(value)
    if (Number.isFinite(secs)) return Math.max(0, secs * 1000)
    const date = Date.parse(value)
    if (Number.isFinite(date)) return Math.max(0, date - now)
  }
  const fromBody = isRecord(body) ? (body.retry_after ?? (isRecord(body.data) ? body.data.retry_after : undefined)) : undefined
  const secs = typeof fromBody === 'string' ? Number(fromBody) : fromBody
  if (typeof secs === 'number' && Number.isFinite(secs)) return Math.max(0, secs * 1000)
  return undefined
}

/**
 * What the service asked for (capped), else capped exponential backoff with jitter: a
 * random wait between half and all of the step, so that clients refused together do not
 * come back together.
 */
export function retryDelay(retry: number, policy: RetryPolicy, retryAfterMs?: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, MAX_RETRY_AFTER_MS)
  const step = Math.min(policy.baseDelayMs * 2 ** retry, policy.maxDelayMs)
  return step / 2 + random() * (step / 2)
}

/**
 * Runs `attempt` until it succeeds, fails for good, runs out of retries, or the next wait
 * would pass `deadline` (then the last error is thrown at once rather than after the wait).
 */
export async function withRetries<T>(
  attempt: () => Promise<Attempt<T>>,
  { policy, signal, deadline }: { policy: RetryPolicy; signal: AbortSignal; deadline?: number },
): Promise<T> {
  for (let retry = 0; ; retry++) {
    const result = await attempt()
    if (result.ok) return result.value
    if (!result.error.details.retryable || retry >= policy.retries) throw result.error
    const wait = retryDelay(retry, policy, result.retryAfterMs)
    if (deadline !== undefined && Date.now() + wait > deadline) throw result.error
    await sleep(wait, signal)
  }
}
