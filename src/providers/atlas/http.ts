/**
 * One call to the Atlas API: bearer auth, a per-request timeout, the envelope check.
 * Failures come back as values so the caller decides whether to retry.
 */
import type { Dispatcher, FormData } from 'undici'
import { loadUndici } from './undici'
import { withTimeout } from './abort'
import { answerError, answerTooLarge, errorCode, transportError, type ErrorContext } from './errors'
import { ProviderError } from '../types'
import { isRecord, readEnvelope, readErrorText } from './protocol'
import type { Attempt } from './retry'
import { readRetryAfter } from './retry'

export interface ApiClient {
  /** Without a trailing slash. */
  baseURL: string
  apiKey: string
  requestTimeoutMs: number
  /** Answers longer than this are cut off unread: one may carry an image as base64, none more. */
  maxAnswerBytes: number
}

export interface ApiAnswer {
  /** The prediction object, unwrapped from `data` when wrapped. */
  payload: Record<string, unknown>
  /** The whole answer. */
  body: Record<string, unknown>
}

export const USER_AGENT = 'unplugin-imagegen'
const PREVIEW_LENGTH = 200

/**
 * Sends one request and reads the answer. Rejects only when `signal` aborts (with its
 * reason); every other failure is an `Attempt` error, retryable or not.
 */
export async function callApi(
  client: ApiClient,
  call: { method: 'GET' | 'POST'; path: string; body?: unknown; form?: FormData },
  signal: AbortSignal,
  ctx: ErrorContext,
): Promise<Attempt<ApiAnswer>> {
  let answer: { status: number; headers: Record<string, string | string[] | undefined>; text: string }
  try {
    answer = await withTimeout(signal, client.requestTimeoutMs, async timed => {
      const { request } = await loadUndici()
      const res = await request(`${client.baseURL}${call.path}`, {
        method: call.method,
        headers: {
          authorization: `Bearer ${client.apiKey}`,
          accept: 'application/json',
          'user-agent': USER_AGENT,
          ...(call.body !== undefined && { 'content-type': 'application/json' }),
        },
        // undici writes the multipart content type, boundary included, for a FormData body
        body: call.form ?? (call.body === undefined ? undefined : JSON.stringify(call.body)),
        signal: timed,
      })
      const text = await readCapped(res, client.maxAnswerBytes, ctx)
      return { status: res.statusCode, headers: res.headers, text }
    })
  } catch (error) {
    if (signal.aborted) throw signal.reason
    if (error instanceof ProviderError) return { ok: false, error }
    return { ok: false, error: transportError(error, `Atlas Cloud at ${client.baseURL}`, ctx), code: errorCode(error) }
  }

  const json = parseJson(answer.text)
  if (answer.status < 200 || answer.status > 299) {
    const text = readErrorText(json, isRecord(json) ? json.data : undefined) ?? preview(answer.text)
    return {
      ok: false,
      error: answerError(answer.status, `HTTP ${answer.status}`, text, ctx),
      retryAfterMs: readRetryAfter(answer.headers['retry-after'], json),
    }
  }
  if (json === undefined) {
    const text = `the answer is not JSON: ${preview(answer.text) ?? '(empty)'}`
    return { ok: false, error: answerError(answer.status, `HTTP ${answer.status}`, text, ctx) }
  }
  const envelope = readEnvelope(json)
  if (!envelope.ok) {
    const label = envelope.code !== undefined ? `code ${envelope.code}` : `HTTP ${answer.status}`
    return {
      ok: false,
      error: answerError(envelope.code, label, envelope.text, ctx),
      retryAfterMs: readRetryAfter(answer.headers['retry-after'], json),
    }
  }
  return { ok: true, value: { payload: envelope.payload, body: json as Record<string, unknown> } }
}

/** The body as text; refused, unread, as soon as it (or the length it announces) passes `maxBytes`. */
async function readCapped({ body, headers }: Dispatcher.ResponseData, maxBytes: number, ctx: ErrorContext): Promise<string> {
  const tooLarge = () => {
    body.on('error', () => {}).destroy()
    return answerTooLarge(maxBytes, ctx)
  }
  if (Number(headers['content-length']) > maxBytes) throw tooLarge()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) throw tooLarge()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function preview(text: string): string | undefined {
  const t = text.replace(/\s+/g, ' ').trim()
  if (!t) return undefined
  return t.length > PREVIEW_LENGTH ? `${t.slice(0, PREVIEW_LENGTH)}…` : t
}
