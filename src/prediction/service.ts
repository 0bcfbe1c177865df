/**
 * What a prediction service adapter tells the runtime, after Replicate's client:
 * `predictions.create`, `predictions.get` and `files.create`, each a described HTTP call
 * with a reader of its answer. The adapter knows paths, auth and answer shapes; the runtime
 * does the sending, the retries, the waiting and the paying once. Nothing here does I/O.
 */
import type { ProviderError } from '../core/errors'
import type { ProviderRequest } from '../providers/types'

export interface PredictionService {
  /** The provider's name: part of every image key. */
  readonly name: string
  /** How messages name the service, e.g. `Atlas Cloud`. */
  readonly title: string
  /** Without a trailing slash. Also tells whose an uploaded URL is: a new service uploads again. */
  readonly baseURL: string
  /** The advice when the service (or its storage) cannot be reached. */
  readonly unreachableHint: string
  /** Throws a ProviderError when nothing can be sent at all (no key, a base URL that is no URL). */
  check(): void
  /** Removes what must never be shown (the key) from text the service or its storage sent. */
  redact(text: string): string
  /** predictions.create: the submit of `request`, `image` being its uploaded reference's URL. */
  create(request: ProviderRequest, image?: string): Call<Prediction>
  /** predictions.get */
  get(id: string): Call<Prediction>
  /** files.create: the upload of a reference image, answered with its URL. */
  upload?(file: Blob, name: string): Call<string>
}

/** What a request was for, as messages say it. */
export interface Doing {
  /** `submitting a prediction`, `polling prediction \`pred_1\``, … */
  action: string
  predictionId?: string
}

/** One HTTP request to the service and how to read its answer. */
export interface Call<T> extends Doing {
  method: 'GET' | 'POST'
  url: string
  headers: Record<string, string>
  body?: string | FormData
  /** Reads an answer of any status: the value, or the service's refusal (its text redacted). */
  read(answer: Answer): T | ProviderError
}

/** An answer as it came: the body read whole (it was small enough), and parsed when JSON. */
export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: unknown
}

export type PredictionState = 'pending' | 'succeeded' | 'failed'

export type Output =
  | { kind: 'url'; url: string }
  | { kind: 'data-url'; contentType?: string; base64: string }
  | { kind: 'base64'; base64: string }

export interface Prediction {
  id?: string
  /** The status as the service wrote it. */
  status?: string
  state: PredictionState
  outputs: Output[]
  /** What the first output entry that is none of the above is, e.g. "a `file:` URL". */
  unusableOutput?: string
  /** The service's reason, for failed predictions. */
  error?: string
  createdAt?: string
  completedAt?: string
  predictTime?: number
}
