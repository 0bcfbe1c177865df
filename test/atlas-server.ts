/**
 * A loopback stand-in for Atlas Cloud that speaks the protocol of ATLAS_API.md:
 * submit, poll, download. Tests change `server.options` between runs and teach it
 * failure modes through `options.intercept`.
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

/** `continue`: answer normally; `reset`: destroy the socket; otherwise send this answer. */
export type InterceptResult =
  | 'continue'
  | 'reset'
  | { status: number; body?: unknown; headers?: Record<string, string> }

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
}

export interface AtlasServer {
  /** Base URL, e.g. `http://127.0.0.1:12345`. */
  url: string
  /** Every accepted POST generateImage JSON body, in order. */
  submits: Array<Record<string, unknown>>
  /** GET prediction requests that reached the handler. */
  polls: number
  /** Outputs served. */
  downloads: number
  /** Every request received, intercepted or not. */
  requests: number
  /** Predictions submitted whose output has not been downloaded yet (failed ones leave when a poll reports them). */
  inFlight: number
  maxInFlight: number
  /** Mutable: tests may change latency, failures, … between runs. */
  options: AtlasServerOptions
  /** Zero the counters and the submits list (known predictions stay pollable). */
  reset(): void
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
const PREDICTION_PATH = /^\/api\/v1\/model\/prediction\/([^/]+)$/
const OUTPUT_PATH = /^\/outputs\/([^/]+)\.png$/

export async function startAtlasServer(options: AtlasServerOptions = {}): Promise<AtlasServer> {
  const predictions = new Map<string, Prediction>()
  /** Ids counted in `inFlight`; cleared by reset() so old predictions never make it negative. */
  const inFlightIds = new Set<string>()
  let counter = 0

  const state: AtlasServer = {
    url: '',
    submits: [],
    polls: 0,
    downloads: 0,
    requests: 0,
    inFlight: 0,
    maxInFlight: 0,
    options,
    reset() {
      state.submits = []
      state.polls = 0
      state.downloads = 0
      state.requests = 0
      state.inFlight = 0
      state.maxInFlight = 0
      inFlightIds.clear()
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
    if (p.error !== undefined) {
      leaveFlight(p.id)
      return { ...base, status: 'failed', error: p.error, completed_at: completedAt }
    }
    const output = p.body.enable_base64_output === true
      ? (await renderPng(p)).toString('base64')
      : `${state.url}/outputs/${p.id}.png`
    return {
      ...base,
      status: o.completedStatus,
      outputs: [output],
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
    const prediction = predictions.get(id)
    const done = prediction && prediction.error === undefined
      && Date.now() >= prediction.doneAt
    if (!done) {
      res.writeHead(404, { 'content-type': 'text/plain' })
      return res.end('not found')
    }
    const png = await renderPng(prediction)
    state.downloads++
    leaveFlight(id)
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(png.length) })
    res.end(png)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    state.requests++
    const method = req.method ?? 'GET'
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const raw = method === 'POST' ? await readBody(req) : ''

    if (state.options.intercept) {
      let parsed: unknown
      try { parsed = raw ? JSON.parse(raw) : undefined } catch {}
      const verdict = await state.options.intercept({
        method, path, headers: req.headers, body: isRecord(parsed) ? parsed : undefined,
      })
      if (verdict === 'reset') return void req.socket.destroy()
      if (verdict !== 'continue') return sendJson(res, verdict.status, verdict.body ?? {}, verdict.headers)
    }

    if (path.startsWith('/api/') && req.headers.authorization !== `Bearer ${opt().apiKey}`)
      return apiError(res, 401, 'Unauthorized: invalid or missing API key')

    if (method === 'POST' && path === SUBMIT_PATH) return submit(res, raw)
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
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
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

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function delay(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
