/**
 * A provider over any prediction service (service.ts): upload a reference, submit (or resume), poll until
 * the prediction ends, save its output, and pay once. Concurrency is the scheduler's, told of each 429.
 */
import { createHash } from 'node:crypto'
import { basename } from 'node:path'
import { clip, ProviderError } from '../core/errors'
import { sleep } from '../core/sleep'
import { sniffImageType, SNIFF_LENGTH } from '../core/image-info'
import { readRegularFile } from '../core/read-file'
import { REFERENCE_LIMIT } from '../core/reference'
import type { GenerationJob, GenerationResult, PredictionTiming, Provider, UploadRecord } from '../providers/types'
import type { Dispatcher } from 'undici'
import { MAX_OUTPUT_BYTES, OutputExpiredError, saveOutput } from './download'
import { errorCode, formatBytes, LATER, loadUndici, readRetryAfter, seconds, transportError, USER_AGENT, withRetries, withTimeout } from './service'
import type { Answer, Attempt, Call, Failure, Prediction, PredictionService, RetryPolicy } from './service'

const DEFAULTS = {
  /**
   * Unset (the default), polls follow the service (`pollWait`): a fresh prediction is first polled when predictions of
   * its model typically end, then densely, backing off as it runs late. Set, it is a fixed schedule instead: the
   * first poll after this many ms, then ×1.5 after each poll, up to `maxPollIntervalMs`. @default undefined
   */
  pollIntervalMs: undefined as number | undefined,
  /** The longest wait between two polls of a prediction, whatever the schedule. @default 5000 */
  maxPollIntervalMs: 5000,
  /** Deadline for one image, from submit (or resume) to its last poll. @default 300_000 */
  timeoutMs: 300_000,
  /** Deadline for one HTTP request, body included. @default 30_000 */
  requestTimeoutMs: 30_000,
  /** Retries of one request (a poll, an upload, a download) after a 429, a 5xx or a network error. @default 4 */
  maxRetries: 4,
  /**
   * Resends of a submit the service surely did not take (429, 503, a connection that failed before the request was
   * written; see `submit`). More than `maxRetries`, as the service is busiest when it refuses: at 50 % refusals one
   * image in about 8,000 still gives up; at the default delays the waits add up to about 4 minutes at most (a
   * `Retry-After` of up to a minute each replaces them), and never past the image's deadline (`timeoutMs`). @default 12
   */
  maxSubmitRetries: 12,
  /** Wait before the first retry, doubling (with jitter) up to `maxRetryDelayMs`, unless the service sends `Retry-After`. @default 1000 */
  retryDelayMs: 1000,
  /** @default 30_000 */
  maxRetryDelayMs: 30_000,
  /** The largest output, cut off as it arrives; API answers may be its base64 size plus 1 MB (one may carry it inline). @default 52_428_800 (50 MB) */
  maxOutputBytes: MAX_OUTPUT_BYTES,
  /** After a submit, how long polls answered 404/400 are taken for a prediction not yet visible. @default 15_000 */
  warmUpMs: 15_000,
  /** Uploaded reference images older than this are uploaded again. @default 86_400_000 (one day) */
  uploadMaxAgeMs: 24 * 60 * 60 * 1000,
}
export type PredictionSettings = Partial<typeof DEFAULTS>
/** Outputs expire 14 days after the submit: an older prediction is not worth a poll. */
const OUTPUT_LIFETIME_MS = 14 * 24 * 60 * 60 * 1000
/** An output that answers 404 sooner than this after its submit has not expired: it is not paid for again. */
const EXPIRY_PLAUSIBLE_MS = 60 * 60 * 1000
/** Transport failures that prove the submit never left this machine, so it was not billed. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'])
/** What a prediction id must be before it is journaled, shown or put in a URL. */
const SAFE_ID = /^[A-Za-z0-9_.:-]{1,128}$/
const SAFE_ID_SHAPE = 'up to 128 letters, digits, `_`, `.`, `:` or `-`'
const running = ({ state }: Prediction) => state === 'pending' || state === 'unknown'
/** Two polls of one prediction are never closer than this (so at most 4 polls a second each, 4·c for c in flight). */
export const POLL_FLOOR_MS = 250
/** Past the expected end, the next poll waits this share of the time it is late by (so ≤ 25 % of its runtime is lost). */
const POLL_BACKOFF = 0.25
/** Prediction times kept per model: the latest, from records and from this run. */
const TIMINGS_KEPT = 16

interface Runtime extends Required<Omit<PredictionSettings, 'pollIntervalMs'>> {
  pollIntervalMs?: number
  /** Recent prediction times (ms from submit to done) by model, oldest first. */
  timings: Map<string, number[]>
  service: PredictionService
  retry: RetryPolicy
  submitRetry: RetryPolicy
  /** Reference uploads by content hash: in flight (one however many images share it), and done. */
  uploading: Map<string, Promise<string>>
  uploaded: Map<string, UploadRecord>
}

export function createPredictionProvider(service: PredictionService, settings: PredictionSettings = {}): Provider {
  const s = { ...DEFAULTS, ...Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined)) }
  const retry = { retries: s.maxRetries, baseDelayMs: s.retryDelayMs, maxDelayMs: s.maxRetryDelayMs }
  const rt: Runtime = { ...s, service, retry, submitRetry: { ...retry, retries: s.maxSubmitRetries }, uploading: new Map(), uploaded: new Map(), timings: new Map() }
  const learn = (records: Iterable<PredictionTiming>) => {
    for (const { provider, model, predictTime, createdAt, completedAt } of records) {
      const took = predictTime ? predictTime * 1000 : Date.parse(completedAt ?? '') - Date.parse(createdAt ?? '')
      if (provider === undefined || provider === service.name) remember(rt, model, took)
    }
  }
  return { name: service.name, generate: (job) => generate(rt, job), learn }
}

/** Keeps a prediction time of `model`; none that is not a plausible one (unknown, ≤ 0, past the deadline). */
function remember({ timings, timeoutMs }: Runtime, model = '', ms: number): void {
  if (!(ms > 0 && ms < timeoutMs)) return
  const kept = timings.get(model) ?? []
  timings.set(model, [...kept.slice(1 - TIMINGS_KEPT), ms])
}

/** When a prediction of `model` typically ends, in ms after its submit: the lower quartile of those kept, 0 when none are. */
function expectedTime({ timings }: Runtime, model: string): number {
  const kept = [...(timings.get(model) ?? [])].sort((a, b) => a - b)
  return kept[Math.floor(kept.length / 4)] ?? 0
}

/**
 * One image. A prediction already paid for is polled, not submitted again; when it turns out to be gone (unknown to
 * the service, or its output expired) the image is submitted afresh, once: a second loss is reported, not paid for.
 */
async function generate(rt: Runtime, job: GenerationJob): Promise<GenerationResult> {
  const { service } = rt
  service.check()
  job.signal.throwIfAborted()
  const image = job.request.image === undefined ? undefined : await upload(rt, job, job.request.image)
  // the journaled prediction, unless too old to have an output left; of unknown age, old enough that a 404 means gone
  const at = typeof job.resume?.submittedAt === 'string' ? Date.parse(job.resume.submittedAt) : Number.NaN
  const outputLeft = Number.isNaN(at) || Date.now() - at < OUTPUT_LIFETIME_MS
  const journaled = job.resume && outputLeft ? { id: job.resume.id, submittedAt: at || 0 } : undefined
  // the image's deadline runs from its first submit (refusals included) or resume
  const deadline = Date.now() + rt.timeoutMs
  for (let afresh = false; ; afresh = true) {
    const resume = afresh ? undefined : journaled
    let prediction = resume ? undefined : await submit(rt, job, service.create(job.request, image), deadline)
    const { id, submittedAt } = resume ?? { id: prediction?.id, submittedAt: Date.now() }
    // an id goes into files, messages and poll URLs: one that is no plain token (an echo of the request, say) is refused, unshown
    if (prediction && (id === undefined ? running(prediction) : !SAFE_ID.test(id))) {
      const what = id === undefined ? 'has no prediction id to poll' : `has a prediction id that is not ${SAFE_ID_SHAPE} (not shown)`
      const hint = 'The submit may have been billed; nothing was journaled. Run again; if it persists, the API has changed.'
      throw new ProviderError(`${service.title} accepted the submit but its answer ${what}.`, { hint })
    }
    if (prediction && prediction.state !== 'failed' && id !== undefined) await job.onSubmitted?.({ id, submittedAt: new Date(submittedAt).toISOString() })
    job.signal.throwIfAborted()
    const named = `${service.title} prediction${id === undefined ? '' : ` \`${id}\``}`
    if (!prediction || running(prediction)) {
      try {
        // a journaled one has an id, and a submitted one without an id was refused above
        prediction = await poll(rt, job, id!, submittedAt, deadline, !resume)
      } catch (error) {
        // the journal outlived the prediction: what was paid is lost either way. Only these two say so: a 400 or
        // another 4xx may be a passing fault, and dropping the journal for it would pay again.
        if (resume && error instanceof ProviderError && [404, 410].includes(error.status ?? 0)) continue
        throw error
      }
    }
    if (prediction.state === 'failed') {
      const ended = !prediction.status || prediction.status.toLowerCase() === 'failed' ? 'failed' : `ended as \`${prediction.status}\``
      const why = clip(prediction.error ?? 'no reason given', 500).replace(/[.\s]+$/, '')
      const hint = 'Change the prompt or parameters if the service refused them; otherwise run again.'
      throw new ProviderError(`${named} ${ended}: ${why}.`, { hint, predictionId: id, predictionOver: true })
    }
    const output = prediction.outputs[0]
    if (!output) {
      // never fetched: a `file:` output would read this machine's files, `ftp:` and the like are no storage of the service's
      const [why, hint] = prediction.unusableOutput
        ? [`its output is ${prediction.unusableOutput}; only http(s) URLs, data: URLs and base64 are accepted.`, 'Nothing was cached; run again to generate it afresh.']
        : ['has no output image.', 'Run again to generate it afresh.']
      throw new ProviderError(`${named} is \`${prediction.status ?? 'done'}\` but ${why}`, { hint, predictionId: id, predictionOver: true })
    }
    // Decided once, before the download: whether an expired output sends this job to submit afresh (below). When it
    // cannot, the prediction is over at the service and the next one may start while this output downloads.
    const expiredMeansGone = !afresh && Date.now() - submittedAt >= EXPIRY_PLAUSIBLE_MS
    if (!expiredMeansGone) job.onEnded?.()
    try {
      const download = { timeoutMs: rt.requestTimeoutMs, retry: rt.retry, maxBytes: rt.maxOutputBytes, predictionId: id, redact: service.redact }
      const options = { ...download, signal: job.signal, unreachableHint: service.unreachableHint, onRateLimited: job.onRateLimited }
      const { contentType } = await saveOutput(output, job.destination, options)
      const { createdAt, completedAt, predictTime } = prediction
      return { predictionId: id, contentType, createdAt, completedAt, predictTime }
    } catch (error) {
      if (!(error instanceof OutputExpiredError)) throw error
      const age = Date.now() - submittedAt
      if (expiredMeansGone) continue
      // Too recent to have expired: storage that has not caught up, most likely. Paying again
      // now would be a guess; the journal keeps the prediction for a rerun.
      const reason = `the output of ${named} answered 404 only ${Math.round(age / 1000)} s after its submit (outputs last 14 days).`
      const hint = 'It is paid for and journaled: run again to download it; should it still be missing an hour after its submit, a run generates it afresh.'
      throw new ProviderError(reason, { hint, predictionId: id, status: 404, retryable: true })
    }
  }
}

/** The URL of a reference image at the service, uploaded once per content hash and again once old or for another service. */
async function upload(rt: Runtime, job: GenerationJob, path: string): Promise<string> {
  const name = basename(path)
  // bounded and type-checked again: the file may have changed since the manifest was keyed
  const bytes = await readRegularFile(path, REFERENCE_LIMIT, (why) => {
    throw new ProviderError(`the reference image ${name} ${why}; nothing was uploaded.`, { hint: "Check the entry's `image` path and run again." })
  })
  // reference.ts refused non-images already; this guards callers that skip it
  const type = sniffImageType(bytes.subarray(0, SNIFF_LENGTH))
  if (!type) throw new ProviderError(`the reference image ${name} is not a PNG, JPEG, WebP or AVIF image; nothing was uploaded.`)
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  let url = rt.uploading.get(sha256)
  if (!url) {
    url = (async () => {
      const known = rt.uploaded.get(sha256) ?? (await job.uploads?.get(sha256).catch(() => undefined))
      const age = known ? Date.now() - Date.parse(known.uploadedAt) : Number.NaN
      if (known?.service === rt.service.baseURL && age >= 0 && age < rt.uploadMaxAgeMs) return known.url
      const call = rt.service.upload(new Blob([new Uint8Array(bytes)], { type }), name)
      const record = { url: await request(rt, job, call), uploadedAt: new Date().toISOString(), service: rt.service.baseURL }
      rt.uploaded.set(sha256, record)
      await job.uploads?.set(sha256, record)
      return record.url
    })()
    rt.uploading.set(sha256, url)
    // settled uploads leave: the memo answers from now on, and a failure may be tried again
    url.finally(() => rt.uploading.delete(sha256)).catch(() => {})
  }
  return url
}

/** Sends `call` once; `signal` (by default the job's) ends it. Answers are read up to the output's base64 size plus 1 MB. */
async function send<T>({ service, requestTimeoutMs, maxOutputBytes }: Runtime, job: GenerationJob, call: Call<T>, signal = job.signal): Promise<Attempt<T>> {
  const maxBytes = Math.ceil(maxOutputBytes / 3) * 4 + 1024 * 1024
  const sentAt = performance.now()
  let answer: Answer
  try {
    answer = await withTimeout(signal, requestTimeoutMs, async (timed) => {
      const { request } = await loadUndici()
      const method = call.body === undefined ? 'GET' : 'POST'
      // undici writes the multipart content type, boundary included, for a FormData body
      const jsonBody = typeof call.body === 'string' && { 'content-type': 'application/json' }
      const headers = { 'user-agent': USER_AGENT, accept: 'application/json', ...jsonBody, ...call.headers }
      // Node's FormData is one undici reads (by its shape), though typed apart
      const res = await request(call.url, { method, headers, body: call.body as Dispatcher.RequestOptions['body'], signal: timed })
      const refuse = () => {
        // destroy, not dump: reading what the cap is there to refuse would defeat it
        res.body.on('error', () => {}).destroy()
        const reason = `${service.title} sent an answer larger than ${formatBytes(maxBytes)} (while ${call.action}); refusing to read it.`
        return new ProviderError(reason, { hint: LATER, predictionId: call.predictionId, retryable: true })
      }
      if (Number(res.headers['content-length']) > maxBytes) throw refuse()
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if ((size += chunk.length) > maxBytes) throw refuse()
        chunks.push(chunk)
      }
      const text = Buffer.concat(chunks).toString('utf8')
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
  if (value.status === 429) job.onRateLimited?.(sentAt)
  return { ok: false, error: value, retryAfterMs: readRetryAfter(answer.headers['retry-after'], answer.json) }
}

/**
 * Sends the submit. There is no idempotency key: every submit that reaches the service is billed, and a client
 * that sends one again when unsure pays twice. So it is sent again (up to `maxSubmitRetries` times, with backoff
 * and jitter, or after the `Retry-After` asked for) only when the service surely did not take it:
 * - 429: the service refused it before doing anything;
 * - 503, with or without `Retry-After`: HTTP defines it as "not handled". A proxy that forwarded the request and
 *   then answered 503 is the rare exception, and not resending would not protect against it: the next build submits
 *   the same image again anyway;
 * - a connection that failed before the request was written (refused, no DNS, connect timeout).
 * Everything else is ambiguous and is never repeated: 500, 502 and 504 (the service or a gateway may have taken it
 * before failing), a connection dropped or a timeout after the body was sent (it may have arrived), an answer we
 * could not read; its message says it may have been billed.
 *
 * The submit is not cut short by the job's signal (Ctrl-C, a closing dev server): an answer already on its way
 * carries a billed prediction's id, which must reach the journal. Only the request timeout ends it; the abort is
 * honoured right after, and during any wait.
 */
function submit(rt: Runtime, job: GenerationJob, call: Call<Prediction>, deadline: number): Promise<Prediction> {
  const notTaken = ({ error: { status }, code }: Failure) =>
    status === 429 || status === 503 || (status === undefined && code !== undefined && NOT_SENT_CODES.has(code))
  const hint = `The submit may have been billed anyway, so it was not sent again: if no new prediction shows in your ${rt.service.title} dashboard, run again.`
  return withRetries(() => send(rt, job, call, new AbortController().signal), {
    policy: rt.submitRetry,
    signal: job.signal,
    // a service that keeps asking to come back later (`Retry-After: 60`) is given up at the image's deadline
    deadline,
    resend: notTaken,
    refused: ({ error }) => (error.status === undefined || error.status >= 500 ? error.with({ hint, retryable: false }) : error),
  })
}

/** A call that is safe to repeat (a poll, an upload), sent again while its failure is retryable. */
function request<T>(rt: Runtime, job: GenerationJob, call: Call<T>, deadline?: number): Promise<T> {
  return withRetries(() => send(rt, job, call), { policy: rt.retry, signal: job.signal, deadline })
}

/**
 * Polls until the prediction ends or the deadline. A status the adapter does not know (`unknown`) is polled as a
 * running one, but not past `timeoutMs` from the submit: then it is given up as over (`predictionOver`), so a new
 * terminal status costs one deadline and the next run submits afresh, instead of blocking the image on every run.
 */
async function poll(rt: Runtime, job: GenerationJob, id: string, submittedAt: number, deadline: number, fresh: boolean): Promise<Prediction> {
  const { model } = job.request
  const { pollIntervalMs: fixed } = rt
  const learned = () => pollWait(Date.now() - submittedAt, expectedTime(rt, model), rt.maxPollIntervalMs)
  // a resumed prediction may be long done: look at once
  let wait = !fresh ? 0 : fixed ?? learned()
  let last: Prediction | undefined
  // ms after the submit of the last poll that found it running: it ended after that
  let runningAt = 0
  for (let left = deadline - Date.now(); left > 0; left = deadline - Date.now()) {
    // a timer may fire a hair early (it counts from the event loop's time, not the clock's): a poll due at the
    // expected end must not go out just before it
    for (const due = Date.now() + Math.min(wait, left); Date.now() < due; ) await sleep(due - Date.now(), job.signal)
    const sentAt = Date.now() - submittedAt
    const prediction = await request(rt, job, rt.service.get(id), deadline).catch((error: unknown) => {
      // a fresh prediction may answer 404/400 for a few seconds
      if (error instanceof ProviderError && [400, 404].includes(error.status ?? 0) && Date.now() - submittedAt < rt.warmUpMs) return undefined
      throw error
    })
    last = prediction ?? last
    if (last && !running(last)) {
      // it ended between the two polls; the service's own time, when it says, places it more closely
      const said = last.predictTime === undefined ? Number.NaN : last.predictTime * 1000
      if (fresh) remember(rt, model, Number.isNaN(said) ? (runningAt + sentAt) / 2 : Math.min(Math.max(said, runningAt), sentAt))
      return last
    }
    runningAt = sentAt
    if (last?.state === 'unknown' && Date.now() - submittedAt >= rt.timeoutMs) break
    wait = fixed === undefined ? learned() : nextPollWait(wait, { pollIntervalMs: fixed, maxPollIntervalMs: rt.maxPollIntervalMs })
  }
  const status = `\`${last?.status ?? 'unknown'}\``
  if (last?.state === 'unknown') {
    const reason = `${rt.service.title} prediction \`${id}\` is still ${status}, a status unplugin-imagegen does not know, more than ${seconds(rt.timeoutMs)} after its submit; it is given up.`
    const hint = 'Run again to generate it afresh; if the service reports a new running status, please open an issue.'
    throw new ProviderError(reason, { hint, predictionId: id, predictionOver: true })
  }
  const reason = `${rt.service.title} prediction \`${id}\` did not finish within ${seconds(rt.timeoutMs)} (last status ${status}).`
  const hint = 'It is paid for: the next run polls it again instead of submitting; raise `timeoutMs` to wait longer.'
  throw new ProviderError(reason, { hint, predictionId: id, retryable: true })
}

/**
 * The default schedule: the wait in ms before the next poll of a prediction `elapsed` ms after its submit, when
 * predictions of its model typically end `expected` ms after theirs, or 0 when none is known.
 *
 * `expected` (`expectedTime`) is the lower quartile of the latest 16 times of the model: each prediction this run saw
 * end gives the service's `metrics.predict_time`, placed between the last poll that found it running and the one that
 * found it done (their midpoint when the service does not say); each cache record handed to `learn` gives its
 * `predictTime`, or `completedAt − createdAt`.
 *
 * Before `expected`, it waits until then (one poll at the expected end); past it, a quarter of the time it is late
 * by. Never less than `POLL_FLOOR_MS` (250), nor more than `cap` (`maxPollIntervalMs`, 5000). So with history, polls
 * are dense (every 250 ms) for the first second after the expected end, then back off ×1.25; with none (a project's
 * first build), they come every 250 ms for the first second (0.25, 0.5, 0.75, 1, 1.25, 1.56, 1.95, 2.44 s …), then
 * ×1.25 up to every 5 s. A prediction is polled at most 4 times a second, so c in flight at most 4·c times (32 at
 * c = 8); once the service's time is learned, a prediction that ends on time is polled once.
 */
export function pollWait(elapsed: number, expected: number, cap: number): number {
  const wait = elapsed < expected ? expected - elapsed : (elapsed - expected) * POLL_BACKOFF
  return Math.min(Math.max(wait, POLL_FLOOR_MS), cap)
}

/** The schedule when `pollIntervalMs` is set: that interval first, then ×1.5 after each poll, up to `maxPollIntervalMs`. */
export function nextPollWait(previous: number, { pollIntervalMs, maxPollIntervalMs }: { pollIntervalMs: number; maxPollIntervalMs: number }): number {
  return previous < pollIntervalMs ? pollIntervalMs : Math.min(previous * 1.5, maxPollIntervalMs)
}
