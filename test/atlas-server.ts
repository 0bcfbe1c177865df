/**
 * A loopback stand-in for Atlas Cloud that speaks the protocol of ATLAS_API.md:
 * submit, poll, download, upload. Tests change `server.options` between runs and teach it
 * failure modes through `options.intercept` (any request) and `options.download` (outputs).
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import sharp from 'sharp'

/** What `intercept` sees of a request. */
export interface InterceptedRequest {
  method: string
  /** Path without the query string, e.g. `/api/v1/model/prediction/pred_1`. */
  path: string
  headers: IncomingMessage['headers']
  /** Parsed JSON body of a POST, when it is JSON. */
  body?: Record<string, unknown>
}

/**
 * `continue`: answer normally; `reset`: destroy the socket (after a POST's body was read);
 * `hang`: never answer, holding the socket; otherwise send this answer (`raw` instead of a
 * JSON `body`, e.g. an HTML error page; `streamBytes`: filler, chunked without a length,
 * until that many bytes — `Infinity` for a body that never ends — or the client goes away).
 */
export type InterceptResult =
  | 'continue'
  | 'reset'
  | 'hang'
  | { status: number; body?: unknown; raw?: string; streamBytes?: number; headers?: Record<string, string> }

/**
 * How an output URL answers (`attempt`: 1 for the first request for that output):
 * `expired`: 404, as after 14 days; `truncated`: announces the whole PNG, sends half, drops
 * the connection; `body`: these bytes instead; `streamBytes`: a PNG signature then filler,
 * chunked without a length, until that many bytes (`Infinity`: never ends) or the client
 * goes away; `stallAfter`: announces the whole PNG, sends its first `stallAfter` bytes
 * (negative: all but that many; `half`: half of it) and then nothing, holding the connection open.
 */
export type DownloadBehaviour =
  | 'continue'
  | 'expired'
  | 'truncated'
  | { body: Buffer | string; contentType?: string }
  | { streamBytes: number }
  | { stallAfter: number | 'half' }

/** How outputs are given in a completed prediction. @see AtlasServerOptions.outputForm */
export type OutputForm = 'url' | 'object' | 'data-url' | 'base64' | 'output'

export interface AtlasServerOptions {
  /** Bearer token every /api/ request must carry. @default 'test-key' */
  apiKey?: string
  /** Time from submit until the prediction is done. @default 30 */
  latencyMs?: number
  /** `wrapped`: `{ code: 200, message: 'success', data }`; `flat`: the object itself. @default 'wrapped' */
  shape?: 'wrapped' | 'flat'
  /** @default 'completed' */
  completedStatus?: 'completed' | 'succeeded'
  /** Status reported while running. @default 'processing' */
  pendingStatus?: string
  /** Return an error text to make that prediction end as `failed` with this `error`. */
  fail?: (body: Record<string, unknown>) => string | undefined
  /** Called for every request before anything else; see `InterceptResult`. */
  intercept?: (req: InterceptedRequest) => InterceptResult | Promise<InterceptResult>
  /**
   * `url`: `outputs: ["https…"]`; `object`: `outputs: [{ url }]`; `data-url`, `base64`: the PNG
   * inline; `output`: a single `output` URL instead of `outputs`. `enable_base64_output` in
   * the submit also gives `base64`. @default 'url'
   */
  outputForm?: OutputForm
  /** How output URLs answer; see `DownloadBehaviour`. */
  download?: (id: string, attempt: number) => DownloadBehaviour
  /** `wrapped`: `{ code, data: { download_url, … } }`; `url`: `{ url }`. @default 'wrapped' */
  uploadShape?: 'wrapped' | 'url'
}

/** A file received by uploadMedia. */
export interface ReceivedUpload {
  fileName: string
  contentType: string
  size: number
  sha256: string
  url: string
}

export interface AtlasServer {
  /** Base URL, e.g. `http://127.0.0.1:12345`. */
  url: string
  /** Every accepted POST generateImage JSON body, in order. */
  submits: Array<Record<string, unknown>>
  /** POST generateImage requests received, accepted or not (intercepted ones included). */
  submitAttempts: number
  /** Files received by uploadMedia, in order. */
  uploads: ReceivedUpload[]
  /** Requests to output URLs, whatever they were answered. */
  downloadRequests: number
  /** Streamed bodies (`streamBytes` outputs or intercepted answers) the client stopped reading before their end. */
  downloadsCutShort: number
  /** Output bodies that sent their part under `stallAfter` and now send nothing more. */
  downloadsStalled: number
  /** GET prediction requests that reached the handler. */
  polls: number
  /** Outputs served. */
  downloads: number
  /** Every request received, intercepted or not. */
  requests: number
  /**
   * Predictions running at the service: submitted, and not yet reported over by a poll (or a sync submit's answer).
   * A client that waits for that report before its next submit keeps this at most its concurrency; downloads of
   * outputs already over are not counted.
   */
  inFlight: number
  maxInFlight: number
  /** Mutable: tests may change latency, failures, … between runs. */
  options: AtlasServerOptions
  /** Zero the counters and the submits list (known predictions stay pollable). */
  reset(): void
  /** Accepted predictions per prompt, from `submits`. */
  predictionsPerPrompt(): Map<string, number>
  /** Makes known predictions done now (all of them, or those of `ids`). */
  finish(ids?: string[]): void
  /** Forgets a prediction: polls for it answer 404, as for one the service dropped. */
  forget(id: string): void
  close(): Promise<void>
}

interface Prediction {
  id: string
  body: Record<string, unknown>
  width: number
  height: number
  latencyMs: number
  /** Date.now() from which the prediction is done. */
  doneAt: number
  error: string | undefined
  createdAt: string
}

const SUBMIT_PATH = '/api/v1/model/generateImage'
const UPLOAD_PATH = '/api/v1/model/uploadMedia'
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
const PREDICTION_PATH = /^\/api\/v1\/model\/prediction\/([^/]+)$/
const OUTPUT_PATH = /^\/outputs\/([^/]+)\.png$/

/** `port`: listen on this port (e.g. one a test saw refused), else any free one. */
export async function startAtlasServer(options: AtlasServerOptions = {}, { port = 0 }: { port?: number } = {}): Promise<AtlasServer> {
  const predictions = new Map<string, Prediction>()
  /** Ids counted in `inFlight`; cleared by reset() so old predictions never make it negative. */
  const inFlightIds = new Set<string>()
  const downloadAttempts = new Map<string, number>()
  let counter = 0
  let uploadCounter = 0
  /** Every URL uploadMedia gave out; a submit's `image` must be one of them. */
  const issuedUploads = new Set<string>()

  const state: AtlasServer = {
    url: '',
    submits: [],
    submitAttempts: 0,
    uploads: [],
    downloadRequests: 0,
    downloadsCutShort: 0,
    downloadsStalled: 0,
    polls: 0,
    downloads: 0,
    requests: 0,
    inFlight: 0,
    maxInFlight: 0,
    options,
    reset() {
      state.submits = []
      state.submitAttempts = 0
      state.uploads = []
      state.downloadRequests = 0
      state.downloadsCutShort = 0
      state.downloadsStalled = 0
      downloadAttempts.clear()
      state.polls = 0
      state.downloads = 0
      state.requests = 0
      state.inFlight = 0
      state.maxInFlight = 0
      inFlightIds.clear()
    },
    predictionsPerPrompt() {
      const counts = new Map<string, number>()
      for (const body of state.submits) counts.set(String(body.prompt), (counts.get(String(body.prompt)) ?? 0) + 1)
      return counts
    },
    finish(ids) {
      const now = Date.now()
      for (const p of predictions.values()) if (!ids || ids.includes(p.id)) p.doneAt = Math.min(p.doneAt, now)
    },
    forget(id) {
      predictions.delete(id)
      leaveFlight(id)
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.closeAllConnections()
      server.close(err => (err ? reject(err) : resolve()))
    }),
  }

  const leaveFlight = (id: string) => {
    if (inFlightIds.delete(id)) state.inFlight--
  }

  const opt = () => ({
    apiKey: state.options.apiKey ?? 'test-key',
    latencyMs: state.options.latencyMs ?? 30,
    shape: state.options.shape ?? 'wrapped',
    completedStatus: state.options.completedStatus ?? 'completed',
    pendingStatus: state.options.pendingStatus ?? 'processing',
  })

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(JSON.stringify(body))
  }
  /** A successful API answer, in the configured shape. */
  const answer = (res: ServerResponse, data: Record<string, unknown>) =>
    sendJson(res, 200, opt().shape === 'wrapped' ? { code: 200, message: 'success', data } : data)
  const apiError = (res: ServerResponse, status: number, message: string) =>
    sendJson(res, status, opt().shape === 'wrapped' ? { code: status, message } : { error: message })

  /** The prediction as a poll would see it now. */
  const view = async (p: Prediction): Promise<Record<string, unknown>> => {
    const o = opt()
    const base = { id: p.id, model: p.body.model, created_at: p.createdAt }
    const { doneAt } = p
    if (Date.now() < doneAt) return { ...base, status: o.pendingStatus }
    const completedAt = new Date(doneAt).toISOString()
    leaveFlight(p.id)
    if (p.error !== undefined) {
      return { ...base, status: 'failed', error: p.error, completed_at: completedAt }
    }
    const form = p.body.enable_base64_output === true ? 'base64' : (state.options.outputForm ?? 'url')
    const url = `${state.url}/outputs/${p.id}.png`
    const inline = form === 'base64' || form === 'data-url' ? (await renderPng(p)).toString('base64') : ''
    const outputs =
      form === 'output' ? { output: url }
      : form === 'object' ? { outputs: [{ url }] }
      : form === 'base64' ? { outputs: [inline] }
      : form === 'data-url' ? { outputs: [`data:image/png;base64,${inline}`] }
      : { outputs: [url] }
    return {
      ...base,
      status: o.completedStatus,
      ...outputs,
      metrics: { predict_time: p.latencyMs / 1000 },
      completed_at: completedAt,
    }
  }

  const submit = async (res: ServerResponse, raw: string) => {
    let body: unknown
    try {
      body = JSON.parse(raw)
    } catch {
      return apiError(res, 400, 'request body is not valid JSON')
    }
    if (!isRecord(body)) return apiError(res, 400, 'request body must be a JSON object')
    for (const field of ['model', 'prompt'] as const) {
      if (typeof body[field] !== 'string' || body[field] === '')
        return apiError(res, 422, `\`${field}\` is required`)
    }
    const size = readSize(body)
    if (typeof size === 'string') return apiError(res, 422, size)
    // URLs of this server's uploads must be ones it gave out; others are the manifest's own
    if (String(body.image).startsWith(`${state.url}/uploads/`) && !issuedUploads.has(String(body.image)))
      return apiError(res, 422, `\`image\` is not a URL of an uploaded file: ${String(body.image)}`)

    const id = `pred_${++counter}`
    const { latencyMs } = opt()
    const prediction: Prediction = {
      id,
      body,
      ...size,
      latencyMs,
      doneAt: Date.now() + latencyMs,
      error: state.options.fail?.(body),
      createdAt: new Date().toISOString(),
    }
    predictions.set(id, prediction)
    state.submits.push(body)
    inFlightIds.add(id)
    state.inFlight++
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight)

    if (body.enable_sync_mode === true) {
      await delay(latencyMs)
      // timers may fire a hair before Date.now() reaches doneAt
      prediction.doneAt = Math.min(prediction.doneAt, Date.now())
    }
    answer(res, await view(prediction))
  }

  const poll = async (res: ServerResponse, id: string) => {
    state.polls++
    const prediction = predictions.get(id)
    if (!prediction) return apiError(res, 404, `prediction ${id} not found`)
    answer(res, await view(prediction))
  }

  const download = async (res: ServerResponse, id: string) => {
    state.downloadRequests++
    const attempt = (downloadAttempts.get(id) ?? 0) + 1
    downloadAttempts.set(id, attempt)
    const prediction = predictions.get(id)
    const done = prediction && prediction.error === undefined
      && Date.now() >= prediction.doneAt
    const behaviour = state.options.download?.(id, attempt) ?? 'continue'
    if (!done || behaviour === 'expired') {
      res.writeHead(404, { 'content-type': 'text/plain' })
      return res.end('not found')
    }
    const png = await renderPng(prediction)
    if (behaviour === 'truncated') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(png.length) })
      res.write(png.subarray(0, Math.floor(png.length / 2)), () => res.destroy())
      return
    }
    if (typeof behaviour === 'object' && 'stallAfter' in behaviour) {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(png.length) })
      const end = behaviour.stallAfter === 'half' ? Math.floor(png.length / 2) : behaviour.stallAfter
      res.write(png.subarray(0, end), () => state.downloadsStalled++)
      return
    }
    if (typeof behaviour === 'object' && 'body' in behaviour) {
      const body = Buffer.from(behaviour.body)
      res.writeHead(200, { 'content-type': behaviour.contentType ?? 'image/png', 'content-length': String(body.length) })
      return res.end(body)
    }
    if (typeof behaviour === 'object') return stream(res, behaviour.streamBytes)
    state.downloads++
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(png.length) })
    res.end(png)
  }

  /** A PNG signature, then filler, in chunks, honouring backpressure, until done or cut off. */
  const stream = async (res: ServerResponse, total: number, status = 200, headers: Record<string, string> = { 'content-type': 'image/png' }) => {
    let finished = false
    res.on('close', () => {
      if (!finished) state.downloadsCutShort++
    })
    res.writeHead(status, headers)
    const chunk = Buffer.alloc(64 * 1024, 0x42)
    PNG_SIGNATURE.copy(chunk)
    for (let sent = 0; sent < total && !res.destroyed; sent += chunk.length) {
      if (!res.write(chunk)) {
        await new Promise<void>(resolve => {
          // one pair of listeners per wait, removed after it: a long stream waits many times
          const done = () => {
            res.off('drain', done).off('close', done)
            resolve()
          }
          res.once('drain', done).once('close', done)
        })
      }
    }
    if (res.destroyed) return
    finished = true
    res.end()
  }

  const upload = async (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    let form: FormData
    try {
      form = await new Request('http://localhost/', { method: 'POST', headers: { 'content-type': String(req.headers['content-type']) }, body: new Uint8Array(raw) }).formData()
    } catch {
      return apiError(res, 400, 'expected multipart/form-data')
    }
    const file = form.get('file')
    if (!(file instanceof Blob)) return apiError(res, 400, 'the `file` field is required')
    const bytes = Buffer.from(await file.arrayBuffer())
    const fileName = 'name' in file && typeof file.name === 'string' ? file.name : 'upload'
    const url = `${state.url}/uploads/${++uploadCounter}/${encodeURIComponent(fileName)}`
    issuedUploads.add(url)
    state.uploads.push({ fileName, contentType: file.type, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), url })
    if ((state.options.uploadShape ?? 'wrapped') === 'url') return sendJson(res, 200, { url })
    sendJson(res, 200, { code: 200, message: 'success', data: { download_url: url, file_name: fileName, content_type: file.type, size: bytes.length } })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    state.requests++
    const method = req.method ?? 'GET'
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const bytes = method === 'POST' ? await readBody(req) : Buffer.alloc(0)
    const raw = path === UPLOAD_PATH ? '' : bytes.toString('utf8')
    if (method === 'POST' && path === SUBMIT_PATH) state.submitAttempts++

    if (state.options.intercept) {
      let parsed: unknown
      try { parsed = raw ? JSON.parse(raw) : undefined } catch {}
      const verdict = await state.options.intercept({
        method, path, headers: req.headers, body: isRecord(parsed) ? parsed : undefined,
      })
      if (verdict === 'reset') return void req.socket.destroy()
      if (verdict === 'hang') return
      if (verdict !== 'continue') {
        if (verdict.streamBytes !== undefined) return stream(res, verdict.streamBytes, verdict.status, { 'content-type': 'application/json', ...verdict.headers })
        if (verdict.raw === undefined) return sendJson(res, verdict.status, verdict.body ?? {}, verdict.headers)
        res.writeHead(verdict.status, { 'content-type': 'text/html', ...verdict.headers })
        return void res.end(verdict.raw)
      }
    }

    if (path.startsWith('/api/') && req.headers.authorization !== `Bearer ${opt().apiKey}`)
      return apiError(res, 401, 'Unauthorized: invalid or missing API key')

    if (method === 'POST' && path === SUBMIT_PATH) return submit(res, raw)
    if (method === 'POST' && path === UPLOAD_PATH) return upload(req, res, bytes)
    const pollMatch = method === 'GET' && PREDICTION_PATH.exec(path)
    if (pollMatch) return poll(res, decodeURIComponent(pollMatch[1]!))
    const outputMatch = method === 'GET' && OUTPUT_PATH.exec(path)
    if (outputMatch) return download(res, decodeURIComponent(outputMatch[1]!))
    apiError(res, 404, `no route for ${method} ${path}`)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { code: 500, message: String(err) })
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return state
}

/** A solid colour derived from seed and prompt: deterministic, and no fonts involved. */
function renderPng(p: Prediction): Promise<Buffer> {
  const hash = createHash('sha256').update(`${String(p.body.seed)}\0${String(p.body.prompt)}`).digest()
  return sharp({
    create: { width: p.width, height: p.height, channels: 3, background: { r: hash[0]!, g: hash[1]!, b: hash[2]! } },
  }).png().toBuffer()
}

/** width/height, or `size: "W*H"`, default 1024×1024; a string is the error text. */
function readSize(body: Record<string, unknown>): { width: number; height: number } | string {
  let { width = 1024, height = 1024 } = body
  if (typeof body.size === 'string') [width, height] = body.size.split('*').map(Number)
  const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 4096
  if (!ok(width) || !ok(height)) return `invalid size ${String(width)}x${String(height)}`
  return { width, height }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function delay(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** A small seeded random generator (mulberry32): chaos that is the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
