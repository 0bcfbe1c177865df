/**
 * The Atlas Cloud protocol as pure functions: the submit body, and readers of answers.
 * The service has shown several answer shapes over time (ATLAS_API.md), so every reader here
 * accepts all of them. Nothing here does I/O.
 */
import type { Output, Prediction } from '../prediction/service'
import type { ProviderRequest } from './types'

const SUCCEEDED = new Set(['completed', 'succeeded'])
/** Atlas's own, then those of other prediction services (ATLAS_API.md): none of them changes again. */
const FAILED = new Set(['failed', 'error', 'canceled', 'cancelled', 'timeout', 'aborted', 'expired', 'rejected', 'terminated'])
/** Envelope texts that say nothing about an error. */
const EMPTY_TEXTS = new Set(['success', 'ok'])
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/
/** Shorter strings are likelier a path than an image: the smallest PNG is ~90 base64 characters. */
const MIN_BASE64_LENGTH = 64

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const readString = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined)

/** The envelope `code` as a number; it comes as a number or a string. */
export function readCode(code: unknown): number | undefined {
  if (typeof code === 'number' && Number.isFinite(code)) return code
  return typeof code === 'string' && /^\s*\d+\s*$/.test(code) ? Number(code) : undefined
}

/** Unwraps `{ code, message, data }` or passes a flat object through. A `code` other than 200 is an error even under HTTP 200. */
export function readEnvelope(body: unknown): { ok: true; payload: Record<string, unknown> } | { ok: false; code?: number; text?: string } {
  if (!isRecord(body)) return { ok: false, text: 'the answer is not a JSON object' }
  if (body.code != null) {
    const code = readCode(body.code)
    if (code !== 200) return { ok: false, code, text: readErrorText(body) ?? `code ${String(body.code)}` }
  }
  if (isRecord(body.data)) return { ok: true, payload: body.data }
  if (body.data != null && !['id', 'predictionId', 'status', 'outputs', 'output'].some((key) => key in body))
    return { ok: false, text: 'the answer has no prediction in `data`' }
  return { ok: true, payload: body }
}

/** The prediction id under `id`, `predictionId` or `prediction_id` (of an unwrapped payload). */
export function readPredictionId(payload: Record<string, unknown>): string | undefined {
  for (const value of [payload.id, payload.predictionId, payload.prediction_id]) {
    if (typeof value === 'string' && value.trim() !== '') return value.trim()
    if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  }
  return undefined
}

/**
 * Case-insensitive. Pending: `created`, `starting`, `queued`, `pending`, `processing`, `running`,
 * `in_progress`, and any status never seen before: the caller's deadline bounds them, and a new
 * running state is likelier than a new terminal one.
 */
export function classifyStatus(status: string): Prediction['state'] {
  const s = status.trim().toLowerCase()
  return SUCCEEDED.has(s) ? 'succeeded' : FAILED.has(s) ? 'failed' : 'pending'
}

/** One output entry: a URL, a `data:` URL, raw base64 or `{ url }`; undefined if none of these. */
export function readOutput(value: unknown): Output | undefined {
  if (isRecord(value)) return readOutput(value.url ?? value.uri ?? value.data)
  if (typeof value !== 'string') return undefined
  const text = value.trim()
  if (/^https?:\/\//i.test(text)) return { kind: 'url', url: text }
  const dataURL = /^data:([^;,]*)((?:;[^;,]*)*),(.*)$/is.exec(text)
  if (dataURL) {
    const [, type, params = '', data = ''] = dataURL
    // percent-decoded byte-wise, so binary data survives (decodeURIComponent insists on UTF-8)
    const bytes = () => Buffer.from(data.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1')
    const base64 = params.toLowerCase().split(';').includes('base64') ? data.replace(/\s+/g, '') : bytes().toString('base64')
    return { kind: 'data-url', contentType: type || undefined, base64 }
  }
  const compact = text.replace(/\s+/g, '')
  return compact.length >= MIN_BASE64_LENGTH && BASE64.test(compact) ? { kind: 'base64', base64: compact } : undefined
}

/** `outputs`, or `output` (string or array) when `outputs` is absent, as they came. */
function rawOutputs(payload: Record<string, unknown>): unknown[] {
  const raw = payload.outputs ?? payload.output
  return Array.isArray(raw) ? raw : raw == null ? [] : [raw]
}

/** The readable entries of the outputs; the others are dropped. */
export const readOutputs = (payload: Record<string, unknown>): Output[] => rawOutputs(payload).map(readOutput).filter((o) => o !== undefined)

/** The first error text among `error`, `message`, `msg`, `detail` of each source, in order. */
export function readErrorText(...sources: unknown[]): string | undefined {
  for (const source of sources.filter(isRecord)) {
    for (const key of ['error', 'message', 'msg', 'detail']) {
      const text = toText(source[key])
      if (text && !EMPTY_TEXTS.has(text.toLowerCase())) return text
    }
  }
  return undefined
}

function toText(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() || undefined
  if (isRecord(value)) return readErrorText(value) ?? JSON.stringify(value)
  // FastAPI-style 422 details: [{ loc, msg, type }, …]
  if (Array.isArray(value) && value.length > 0) return value.map((v) => toText(v) ?? JSON.stringify(v)).join('; ')
  return undefined
}

/**
 * A prediction from an unwrapped payload (`envelope`: the whole answer, a fallback for the error
 * text). Without a status, outputs mean done (sync mode) and no outputs mean still running.
 */
export function readPrediction(payload: Record<string, unknown>, envelope?: Record<string, unknown>): Prediction {
  const status = readString(payload.status)
  const outputs = readOutputs(payload)
  const state = status !== undefined ? classifyStatus(status) : outputs.length > 0 ? 'succeeded' : 'pending'
  // of an entry `readOutput` refused, the message shows its scheme, never its text
  const unusable = rawOutputs(payload).find((value) => readOutput(value) === undefined)
  const unusableText = isRecord(unusable) ? (unusable.url ?? unusable.uri ?? unusable.data) : unusable
  const scheme = typeof unusableText === 'string' ? /^\s*([a-z][a-z0-9+.-]*):/i.exec(unusableText)?.[1] : undefined
  const time = (isRecord(payload.metrics) ? payload.metrics.predict_time : undefined) ?? payload.predict_time
  const seconds = typeof time === 'number' || (typeof time === 'string' && time.trim() !== '') ? Number(time) : undefined
  return {
    id: readPredictionId(payload),
    status,
    state,
    outputs,
    ...(unusable !== undefined && { unusableOutput: scheme ? `a \`${scheme.toLowerCase()}:\` URL` : 'not a URL' }),
    error: state === 'failed' ? readErrorText(payload, envelope === payload ? undefined : envelope) : undefined,
    createdAt: readString(payload.created_at ?? payload.createdAt),
    completedAt: readString(payload.completed_at ?? payload.completedAt),
    predictTime: Number.isFinite(seconds) ? seconds : undefined,
  }
}

/**
 * The flat body Atlas's own clients send. Raw `input` fields come last so a manifest can override
 * or add any provider field as it is. The local `image` path is never sent: its uploaded URL goes
 * as `image`, the image input of Atlas's image-to-image models.
 */
export function buildSubmitBody(request: ProviderRequest, imageURL?: string): Record<string, unknown> {
  const { model, prompt, width, height, seed, steps, guidance_scale, input } = request
  return { model, prompt, width, height, seed, steps, guidance_scale, image: imageURL, ...input }
}

/** The URL of an uploaded file: `data.download_url` (as documented) or a top-level `url`. */
export function readUploadURL(payload: Record<string, unknown>, body?: Record<string, unknown>): string | undefined {
  const urls = [payload.download_url, payload.downloadUrl, payload.url, body?.url, body?.download_url]
  return urls.find((v): v is string => typeof v === 'string' && /^https?:\/\//i.test(v.trim()))?.trim()
}
