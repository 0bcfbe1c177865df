/**
 * Atlas Cloud as a prediction service: its paths, its bearer auth, its answers
 * (atlas-protocol.ts) and the words users read when it says no. Waiting, retrying and paying
 * once are the runtime's (src/prediction/).
 */
import { clip, ProviderError } from '../core/errors'
import { createPredictionProvider, type PredictionSettings } from '../prediction/runtime'
import { LATER, USER_AGENT, type Answer, type Call, type Doing, type Prediction, type PredictionService } from '../prediction/service'
import { buildSubmitBody, isRecord, readEnvelope, readErrorText, readPrediction, readUploadURL } from './atlas-protocol'
import type { Provider } from './types'

export interface AtlasProviderOptions extends PredictionSettings {
  /** The API key; without one, generating fails with a message saying how to set it. */
  apiKey?: string
  /** @default 'https://api.atlascloud.ai' */
  baseURL?: string
}

/** Texts that mean the account has no money left, whatever the status says. */
const OUT_OF_CREDIT = /insufficient|balance/i

type Read<T> = (payload: Record<string, unknown>, body: Record<string, unknown>) => T | ProviderError

export function createAtlasProvider({ apiKey, baseURL, ...settings }: AtlasProviderOptions = {}): Provider {
  const base = (baseURL?.trim() || 'https://api.atlascloud.ai').replace(/\/+$/, '')
  return createPredictionProvider(atlasService(apiKey?.trim() || undefined, base), settings)
}

function atlasService(apiKey: string | undefined, baseURL: string): PredictionService {
  // a service may echo what it was sent: the key never travels on in a message
  const redact = (text: string) => (apiKey && apiKey.length >= 4 ? text.split(apiKey).join('***') : text)
  const call = <T>(method: 'GET' | 'POST', path: string, doing: Doing, read: Read<T>, body?: string | FormData): Call<T> => ({
    ...doing,
    method,
    url: `${baseURL}/api/v1/model/${path}`,
    headers: {
      authorization: `Bearer ${apiKey}`,
      accept: 'application/json',
      'user-agent': USER_AGENT,
      // undici writes the multipart content type, boundary included, for a FormData body
      ...(typeof body === 'string' && { 'content-type': 'application/json' }),
    },
    body,
    read: (answer) => readAnswer(answer, doing, redact, read),
  })
  const prediction: Read<Prediction> = (payload, body) => {
    const { id, status, error, ...rest } = readPrediction(payload, body)
    return { ...rest, id: id && redact(id), status: status && redact(status), error: error && redact(error) }
  }

  return {
    name: 'atlas',
    title: 'Atlas Cloud',
    baseURL,
    unreachableHint: 'Check the network and `ATLASCLOUD_BASE_URL`, then run again.',
    check() {
      if (!apiKey) throw new ProviderError('no Atlas Cloud API key.', { hint: 'Set `ATLASCLOUD_API_KEY` (or the `apiKey` option) to generate images.' })
      if (!URL.canParse(baseURL) || !/^https?:$/.test(new URL(baseURL).protocol))
        throw new ProviderError(`the Atlas Cloud base URL \`${baseURL}\` is not an http(s) URL.`, { hint: 'Check `ATLASCLOUD_BASE_URL` or the `baseURL` option.' })
    },
    redact,
    create: (request, image) => call('POST', 'generateImage', { action: 'submitting a prediction' }, prediction, JSON.stringify(buildSubmitBody(request, image))),
    get: (id) => call('GET', `prediction/${encodeURIComponent(id)}`, { action: `polling prediction \`${id}\``, predictionId: id }, prediction),
    upload(file, name) {
      const form = new FormData()
      form.set('file', file, name)
      const hint = 'Run again; if it persists, the upload API has changed.'
      const url: Read<string> = (payload, body) =>
        readUploadURL(payload, body) ?? new ProviderError(`Atlas Cloud accepted the reference image ${name} but its answer has no \`download_url\`.`, { hint })
      return call('POST', 'uploadMedia', { action: `uploading the reference image ${name}` }, url, form)
    },
  }
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

/**
 * A refusal: an HTTP status, or an envelope `code` under HTTP 200 (`label` says which, e.g.
 * `HTTP 401` or `code 401`). Says what happened, during which step, the service's own text, and
 * what to do.
 */
function answerError(status: number | undefined, label: string, text: string | undefined, doing: Doing): ProviderError {
  const said = `(${label}${text ? `: ${clip(text, 500)}` : ''})`
  const at = `while ${doing.action} ${said}`
  const fail = (reason: string, hint: string, more: { retryable?: boolean; predictionOver?: boolean } = {}) =>
    new ProviderError(reason, { hint, predictionId: doing.predictionId, status, ...more })

  if (status === 401) return fail(`Atlas Cloud rejected the API key ${at}.`, 'Check that `ATLASCLOUD_API_KEY` holds a valid key.')
  if (status === 402 || ((status === undefined || status < 500) && text && OUT_OF_CREDIT.test(text)))
    return fail(`the Atlas Cloud account is out of credit ${at}.`, 'Add credit to the account, then run again.')
  if (status === 403) return fail(`Atlas Cloud refused the request ${at}.`, 'Check that the account behind `ATLASCLOUD_API_KEY` may use this model.')
  if (status === 422) return fail(`Atlas Cloud rejected the parameters ${at}.`, "Check the image spec's fields and `input`.")
  if (status === 429) return fail(`Atlas Cloud is rate limiting requests ${at}.`, 'Run again in a while, or lower `concurrency`.', { retryable: true })
  if (status !== undefined && status >= 500) return fail(`Atlas Cloud failed ${at}.`, LATER, { retryable: true })
  if (status === 404 && doing.predictionId) {
    const reason = `Atlas Cloud does not know prediction \`${doing.predictionId}\` ${said}; outputs and predictions expire after about 14 days.`
    return fail(reason, 'Run again to generate the image afresh.', { predictionOver: true })
  }
  return fail(`Atlas Cloud gave an unexpected answer ${at}.`, 'Check the image spec, and that `ATLASCLOUD_BASE_URL` (if set) points at the Atlas Cloud API.')
}
