/**
 * Atlas Cloud as a prediction service: its paths, its bearer auth, readers of its answers (which accept every shape
 * it has shown over time) and the words users read when it says no. Waiting, retrying and paying once are src/prediction/'s.
 */
import { clip, ProviderError, scrub } from '../core/errors'
import { createPredictionProvider, type PredictionSettings } from '../prediction/runtime'
import { LATER, type Answer, type Call, type Doing, type Output, type Prediction, type PredictionService } from '../prediction/service'
import type { Provider, ProviderRequest } from './types'

export interface AtlasProviderOptions extends PredictionSettings {
  /** The API key; without one, generating fails with a message saying how to set it. */
  apiKey?: string
  /** @default 'https://api.atlascloud.ai' */
  baseURL?: string
}

/** Statuses of Atlas's own and of other prediction services (ATLAS_API.md § 2): running ones, and failures that never change again. */
const RUNNING = new Set(['processing', 'created', 'starting', 'queued', 'pending', 'running', 'in_progress'])
const FAILED = new Set(['failed', 'error', 'canceled', 'cancelled', 'timeout', 'timed_out', 'aborted', 'expired', 'rejected', 'terminated'])

type Read<T> = (payload: Record<string, unknown>, body: Record<string, unknown>) => T | ProviderError

export function createAtlasProvider({ apiKey: key, baseURL: url, ...settings }: AtlasProviderOptions = {}): Provider {
  const apiKey = key?.trim() || undefined
  const baseURL = (url?.trim() || 'https://api.atlascloud.ai').replace(/\/+$/, '')
  // a service may echo what it was sent, whole or cut: no piece of the key travels on in a message
  const redact = (text: string) => scrub(text, apiKey)
  const call = <T>(path: string, doing: Doing, read: Read<T>, body?: string | FormData): Call<T> => ({
    ...doing,
    url: `${baseURL}/api/v1/model/${path}`,
    headers: { authorization: `Bearer ${apiKey}` },
    body,
    read: (answer) => readAnswer(answer, doing, redact, read),
  })
  const prediction: Read<Prediction> = (payload, body) => {
    const { id, status, error, unusableOutput, ...rest } = readPrediction(payload, body)
    const [shownStatus, why, unusable] = [status && clip(redact(status), 60), error && redact(error), unusableOutput && redact(unusableOutput)]
    return { ...rest, id: id && redact(id), status: shownStatus, error: why, unusableOutput: unusable }
  }
  const service: PredictionService = {
    name: 'atlas',
    title: 'Atlas Cloud',
    baseURL,
    unreachableHint: 'Check the network and `ATLASCLOUD_BASE_URL`, then run again.',
    check() {
      if (!apiKey) throw new ProviderError('no Atlas Cloud API key.', { hint: 'Set `ATLASCLOUD_API_KEY` (or the `apiKey` option) to generate images.' })
      const url = URL.parse(baseURL)
      // it would be shown in messages and kept with uploads: refused unshown (parsed or not), before anything is sent
      if (url?.username || url?.password || /^[^/?#]*\/\/[^/?#]*@/.test(baseURL))
        throw new ProviderError('the Atlas Cloud base URL holds a user name or password (`user:pass@`); it is not shown and nothing was sent.', {
          hint: 'Remove them from `ATLASCLOUD_BASE_URL` (or the `baseURL` option): the API key is the only credential, in `ATLASCLOUD_API_KEY`.',
        })
      if (!url || !/^https?:$/.test(url.protocol))
        throw new ProviderError(`the Atlas Cloud base URL \`${baseURL}\` is not an http(s) URL.`, { hint: 'Check `ATLASCLOUD_BASE_URL` or the `baseURL` option.' })
    },
    redact,
    create: (request, image) => call('generateImage', { action: 'submitting a prediction' }, prediction, JSON.stringify(buildSubmitBody(request, image))),
    get: (id) => call(`prediction/${encodeURIComponent(id)}`, { action: `polling prediction \`${id}\``, predictionId: id }, prediction),
    upload(file, name) {
      const form = new FormData()
      form.set('file', file, name)
      // `data.download_url` as documented, or a top-level `url`
      const url: Read<string> = (payload, body) => {
        const urls = [payload.download_url, payload.downloadUrl, payload.url, body.url, body.download_url]
        const found = urls.find((v): v is string => typeof v === 'string' && /^https?:\/\//i.test(v.trim()))?.trim()
        const hint = 'Run again; if it persists, the upload API has changed.'
        // the URL is kept in .imagegen/uploads: one that echoes the key is not
        if (found && redact(found) !== found) return new ProviderError(`Atlas Cloud answered the upload of ${name} with a URL that holds the API key; it is not kept.`, { hint })
        return found ?? new ProviderError(`Atlas Cloud accepted the reference image ${name} but its answer has no \`download_url\`.`, { hint })
      }
      return call('uploadMedia', { action: `uploading the reference image ${name}` }, url, form)
    },
  }
  return createPredictionProvider(service, settings)
}

/** Any answer: the envelope unwrapped, or an error whatever its HTTP status said. Service text is redacted before it is clipped. */
function readAnswer<T>({ status, text, json }: Answer, doing: Doing, redact: (text: string) => string, read: Read<T>): T | ProviderError {
  const preview = () => (text.trim() ? clip(redact(text), 200) : undefined)
  if (status < 200 || status > 299) {
    const said = readErrorText(json, isRecord(json) ? json.data : undefined)
    return answerError(status, `HTTP ${status}`, said === undefined ? preview() : redact(said), doing)
  }
  if (json === undefined) return answerError(status, `HTTP ${status}`, `the answer is not JSON: ${preview() ?? '(empty)'}`, doing)
  const envelope = readEnvelope(json)
  if (envelope.ok) return read(envelope.payload, json as Record<string, unknown>)
  return answerError(envelope.code, envelope.code === undefined ? `HTTP ${status}` : `code ${envelope.code}`, envelope.text && redact(envelope.text), doing)
}

/** A refusal: an HTTP status, or an envelope `code` under HTTP 200 (`label` says which), said with what to do. */
function answerError(status: number | undefined, label: string, text: string | undefined, doing: Doing): ProviderError {
  const said = `(${label}${text ? `: ${clip(text, 500)}` : ''})`
  const at = `while ${doing.action} ${said}`
  const fail = (reason: string, hint: string, more: { retryable?: boolean; predictionOver?: boolean } = {}) =>
    new ProviderError(reason, { hint, predictionId: doing.predictionId, status, ...more })

  if (status === 401) return fail(`Atlas Cloud rejected the API key ${at}.`, 'Check that `ATLASCLOUD_API_KEY` holds a valid key.')
  // texts that mean the account has no money left, whatever the status says
  if (status === 402 || ((status === undefined || status < 500) && text && /insufficient|balance/i.test(text)))
    return fail(`the Atlas Cloud account is out of credit ${at}.`, 'Add credit to the account, then run again.')
  if (status === 403) return fail(`Atlas Cloud refused the request ${at}.`, 'Check that the account behind `ATLASCLOUD_API_KEY` may use this model.')
  if (status === 422) return fail(`Atlas Cloud rejected the parameters ${at}.`, "Check the image spec's fields and `input`.")
  if (status === 429) return fail(`Atlas Cloud is rate limiting requests ${at}.`, 'Run again in a while, or lower `concurrency`.', { retryable: true })
  if (status !== undefined && status >= 500) return fail(`Atlas Cloud failed ${at}.`, LATER, { retryable: true })
  if ((status === 404 || status === 410) && doing.predictionId) {
    const reason = `Atlas Cloud does not know prediction \`${doing.predictionId}\` ${said}; outputs and predictions expire after about 14 days.`
    return fail(reason, 'Run again to generate the image afresh.', { predictionOver: true })
  }
  return fail(`Atlas Cloud gave an unexpected answer ${at}.`, 'Check the image spec, and that `ATLASCLOUD_BASE_URL` (if set) points at the Atlas Cloud API.')
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const readString = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined)
/** An ISO 8601 date and time, else nothing: it is kept in cache records, so no other text from the service is. */
const readDate = (value: unknown) => (typeof value === 'string' && /^\d{4}-\d\d-\d\d[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?$/i.test(value) ? value : undefined)

export function readCode(code: unknown): number | undefined {
  if (typeof code === 'number' && Number.isFinite(code)) return code
  return typeof code === 'string' && /^\s*\d+\s*$/.test(code) ? Number(code) : undefined
}

/** Unwraps `{ code, message, data }` or passes a flat object through. A `code` other than 200 is an error even under HTTP 200. */
export function readEnvelope(body: unknown): { ok: true; payload: Record<string, unknown> } | { ok: false; code?: number; text?: string } {
  if (!isRecord(body)) return { ok: false, text: 'the answer is not a JSON object' }
  const code = body.code == null ? 200 : readCode(body.code)
  if (code !== 200) return { ok: false, code, text: readErrorText(body) ?? `code ${String(body.code)}` }
  if (isRecord(body.data)) return { ok: true, payload: body.data }
  if (body.data != null && !['id', 'predictionId', 'status', 'outputs', 'output'].some((key) => key in body))
    return { ok: false, text: 'the answer has no prediction in `data`' }
  return { ok: true, payload: body }
}

export function readPredictionId(payload: Record<string, unknown>): string | undefined {
  const ids = [payload.id, payload.predictionId, payload.prediction_id]
  const id = ids.find((v) => (typeof v === 'string' && v.trim() !== '') || (typeof v === 'number' && Number.isFinite(v)))
  return id === undefined ? undefined : String(id).trim()
}

/** Case-insensitive. A status never seen before is `unknown`: polled on, but given up at the deadline (runtime.ts `poll`). */
export function classifyStatus(status: string): Prediction['state'] {
  const s = status.trim().toLowerCase()
  return s === 'completed' || s === 'succeeded' ? 'succeeded' : FAILED.has(s) ? 'failed' : RUNNING.has(s) ? 'pending' : 'unknown'
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
  // shorter strings are likelier a path than an image: the smallest PNG is ~90 base64 characters
  return compact.length >= 64 && /^[A-Za-z0-9+/_-]+={0,2}$/.test(compact) ? { kind: 'base64', base64: compact } : undefined
}

const rawOutputs = (payload: Record<string, unknown>): unknown[] => [payload.outputs ?? payload.output ?? []].flat()

export const readOutputs = (payload: Record<string, unknown>): Output[] => rawOutputs(payload).map(readOutput).filter((o) => o !== undefined)

export function readErrorText(...sources: unknown[]): string | undefined {
  for (const source of sources.filter(isRecord)) {
    for (const key of ['error', 'message', 'msg', 'detail']) {
      const text = toText(source[key])
      // envelope texts that say nothing about an error
      if (text && !['success', 'ok'].includes(text.toLowerCase())) return text
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

/** `envelope`: the whole answer, a fallback for the error text. Without a status, outputs mean done (sync mode). */
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
    createdAt: readDate(payload.created_at ?? payload.createdAt),
    completedAt: readDate(payload.completed_at ?? payload.completedAt),
    predictTime: Number.isFinite(seconds) ? seconds : undefined,
  }
}

/**
 * The flat body Atlas's own clients send; raw `input` fields last, so a manifest can override or add any field.
 * The local `image` path is never sent: its uploaded URL goes as `image`, the input of image-to-image models.
 */
export function buildSubmitBody(request: ProviderRequest, imageURL?: string): Record<string, unknown> {
  const { model, prompt, width, height, seed, steps, guidance_scale, input } = request
  return { model, prompt, width, height, seed, steps, guidance_scale, image: imageURL, ...input }
}
