/**
 * One bounded HTTP exchange over undici: a deadline for the whole of it, an answer read no
 * further than a cap, and every failure returned as a value, so the caller decides on
 * retries. Only the caller's abort rejects, with its own reason.
 */
import type { Dispatcher } from 'undici'
import { ProviderError } from '../core/errors'
import { readRetryAfter, type Attempt } from './retry'
import type { Answer, Call, Doing, PredictionService } from './service'

export const USER_AGENT = 'unplugin-imagegen'
/** The advice of failures on the service's side that running again later may cure. */
export const LATER = "The fault is on the service's side; run again later."

/** Where a call goes and how far it may run. */
export interface Exchange {
  service: PredictionService
  signal: AbortSignal
  timeoutMs: number
  /** Answers longer than this are cut off unread. */
  maxBytes: number
  /** Told of each 429, with when the refused request was sent (`performance.now()`). */
  onRateLimited?: (sentAt: number) => void
}

let undici: Promise<typeof import('undici')> | undefined
/** undici, loaded by the first request: a build with every image cached never needs it. */
export const loadUndici = () => (undici ??= import('undici'))

/** Sends `call` once and reads its answer through `call.read`. */
export async function send<T>(call: Call<T>, { service, signal, timeoutMs, maxBytes, onRateLimited }: Exchange): Promise<Attempt<T>> {
  const sentAt = performance.now()
  let answer: Answer
  try {
    answer = await withTimeout(signal, timeoutMs, async (timed) => {
      const { request } = await loadUndici()
      // Node's FormData is one undici reads (by its shape), though typed apart
      const res = await request(call.url, { method: call.method, headers: call.headers, body: call.body as Dispatcher.RequestOptions['body'], signal: timed })
      const tooLarge = () =>
        new ProviderError(`${service.title} sent an answer larger than ${formatBytes(maxBytes)} (while ${call.action}); refusing to read it.`, {
          hint: LATER,
          predictionId: call.predictionId,
          retryable: true,
        })
      const text = (await readCapped(res, maxBytes, tooLarge)).toString('utf8')
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {}
      return { status: res.statusCode, headers: res.headers, text, json }
    })
  } catch (error) {
    if (signal.aborted) throw signal.reason
    if (error instanceof ProviderError) return { ok: false, error }
    return { ok: false, error: transportError(error, `${service.title} at ${service.baseURL}`, call, service.unreachableHint), code: errorCode(error) }
  }
  const value = call.read(answer)
  if (!(value instanceof ProviderError)) return { ok: true, value }
  if (value.status === 429) onRateLimited?.(sentAt)
  return { ok: false, error: value, retryAfterMs: readRetryAfter(answer.headers['retry-after'], answer.json) }
}

/** Thrown by `withTimeout` when its own timer, not the caller's signal, ended the work. */
export class RequestTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`request timed out after ${timeoutMs} ms`)
  }
}

/** Runs `work` with a signal that aborts when `signal` does (rejecting with its reason) or after `ms` (RequestTimeoutError). */
export async function withTimeout<T>(signal: AbortSignal, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  signal.throwIfAborted()
  const controller = new AbortController()
  const onAbort = () => controller.abort(signal.reason)
  signal.addEventListener('abort', onAbort, { once: true })
  const timer = setTimeout(() => controller.abort(new RequestTimeoutError(ms)), ms)
  try {
    return await work(controller.signal)
  } catch (error) {
    if (signal.aborted) throw signal.reason
    throw controller.signal.reason instanceof RequestTimeoutError ? controller.signal.reason : error
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
  }
}

/** The body; refused, unread, as soon as it (or the length it announces) passes `maxBytes`. */
export async function readCapped({ body, headers }: Dispatcher.ResponseData, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const refuse = () => {
    // destroy, not dump: reading what the cap is there to refuse would defeat it
    body.on('error', () => {}).destroy()
    return tooLarge()
  }
  if (Number(headers['content-length']) > maxBytes) throw refuse()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if ((size += chunk.length) > maxBytes) throw refuse()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** A request that got no answer. Only the error code is kept: undici's message and stack say nothing a user can act on. */
export function transportError(error: unknown, target: string, doing: Doing, hint: string): ProviderError {
  const details = { predictionId: doing.predictionId, retryable: true, hint }
  if (error instanceof RequestTimeoutError)
    return new ProviderError(`${target} did not answer within ${seconds(error.timeoutMs)} (while ${doing.action}).`, { ...details, hint: 'Check the network, then run again.' })
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

/** `900 KB`, `1.5 MB`. */
export const formatBytes = (bytes: number): string =>
  bytes >= 1024 * 1024 ? `${Number((bytes / 1024 / 1024).toFixed(1))} MB` : `${Math.ceil(bytes / 1024)} KB`

/** `250ms`, `1.5s`, `300s`. */
export const seconds = (ms: number): string => (ms < 1000 ? `${ms}ms` : `${Number((ms / 1000).toFixed(1))}s`)
