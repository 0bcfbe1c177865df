import { existsSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it, vi } from 'vitest'
import { ProviderError } from '../src/core/errors'
import { saveOutput } from '../src/prediction/download'
import { readRetryAfter, retryDelay } from '../src/prediction/service'
import {
  buildSubmitBody,
  classifyStatus,
  createAtlasProvider,
  readCode,
  readEnvelope,
  readErrorText,
  readOutput,
  readOutputs,
  readPrediction,
  readPredictionId,
  type AtlasProviderOptions,
} from '../src/providers/atlas'
import type { GenerationJob, ProviderRequest } from '../src/providers/types'
import { startAtlasServer } from './atlas-server'
import { tempDir } from './helpers/temp'
import { useAtlasServer } from './helpers/atlas'

const MODEL = 'black-forest-labs/flux-schnell'
const SECRET = 'sk-live-must-never-leak'

const server = useAtlasServer()
const dir = tempDir('imagegen-atlas-')
let files = 0


function provider(options: AtlasProviderOptions = {}) {
  return createAtlasProvider({
    apiKey: 'test-key',
    baseURL: server.url,
    pollIntervalMs: 5,
    maxPollIntervalMs: 20,
    retryDelayMs: 1,
    ...options,
  })
}

function job(request: Partial<ProviderRequest> = {}, rest: Partial<GenerationJob> = {}): GenerationJob {
  return {
    key: 'test-key-hash',
    request: { model: MODEL, prompt: 'A beautiful landscape with mountains and lake', width: 64, height: 48, seed: 7, ...request },
    signal: new AbortController().signal,
    destination: join(dir, `out-${++files}.png`),
    ...rest,
  }
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  expect(error).toBeInstanceOf(ProviderError)
  return error as ProviderError
}

describe('atlas provider: generating', () => {
  it.each([
    ['wrapped', 'completed'],
    ['wrapped', 'succeeded'],
    ['flat', 'completed'],
    ['flat', 'succeeded'],
  ] as const)('%s answers ending %s give a PNG of the requested size', async (shape, completedStatus) => {
    server.options = { shape, completedStatus }
    const j = job()
    const result = await provider().generate(j)

    expect(result.predictionId).toMatch(/^pred_\d+$/)
    expect(result.contentType).toBe('image/png')
    expect(typeof result.predictTime).toBe('number')
    expect(result.createdAt).toEqual(expect.any(String))
    expect(result.completedAt).toEqual(expect.any(String))
    const meta = await sharp(j.destination).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 48])
    expect(server.submits).toHaveLength(1)
    expect(server.polls).toBeGreaterThanOrEqual(1)
    expect(server.downloads).toBe(1)
    expect(server.inFlight).toBe(0)
  })

  it('sends the flat body, with raw input fields after ours', async () => {
    await provider().generate(job({ steps: 4, guidance_scale: 3.5, input: { enable_safety_checker: false, seed: 99 } }))
    expect(server.submits[0]).toEqual({
      model: MODEL,
      prompt: 'A beautiful landscape with mountains and lake',
      width: 64,
      height: 48,
      seed: 99,
      steps: 4,
      guidance_scale: 3.5,
      enable_safety_checker: false,
    })
  })

  it('leaves out steps and guidance when the spec has none', async () => {
    await provider().generate(job())
    expect(Object.keys(server.submits[0]!).sort()).toEqual(['height', 'model', 'prompt', 'seed', 'width'])
  })

  it('takes a base URL with a trailing slash', async () => {
    const p = createAtlasProvider({ apiKey: 'test-key', baseURL: `${server.url}/`, pollIntervalMs: 5 })
    expect(p.name).toBe('atlas')
    await p.generate(job())
    expect(server.downloads).toBe(1)
  })

  it('reads no environment variable: the options say it all (they are resolved elsewhere)', async () => {
    vi.stubEnv('ATLASCLOUD_API_KEY', 'test-key')
    vi.stubEnv('ATLASCLOUD_BASE_URL', server.url)
    try {
      const error = await failure(createAtlasProvider({ pollIntervalMs: 5 }).generate(job()))
      expect(error.message).toMatch(/^no Atlas Cloud API key\..*`ATLASCLOUD_API_KEY`/)
      expect(server.requests).toBe(0)
    } finally {
      vi.unstubAllEnvs()
    }
  })

  it('calls onSubmitted once with the id and the time of the submit, before the first poll', async () => {
    const seen: Array<{ id: string; polls: number; submittedAt: unknown }> = []
    const before = Date.now()
    const result = await provider().generate(job({}, { onSubmitted: ({ id, submittedAt }) => void seen.push({ id, polls: server.polls, submittedAt }) }))
    expect(seen).toEqual([{ id: result.predictionId, polls: 0, submittedAt: expect.any(String) }])
    expect(Date.parse(String(seen[0]!.submittedAt))).toBeGreaterThanOrEqual(before - 1000)
  })

  it('waits for an async onSubmitted before polling', async () => {
    let pollsAfterHook = -1
    await provider().generate(job({}, {
      onSubmitted: async () => {
        await new Promise(resolve => setTimeout(resolve, 20))
        pollsAfterHook = server.polls
      },
    }))
    expect(pollsAfterHook).toBe(0)
  })

  it('resumes a prediction by polling it, without a submit', async () => {
    const first = await provider().generate(job())
    server.reset()
    const onSubmitted = vi.fn()
    const j = job({}, { resume: { id: first.predictionId! }, onSubmitted })
    const result = await provider().generate(j)

    expect(result.predictionId).toBe(first.predictionId)
    expect(server.submits).toHaveLength(0)
    expect(server.polls).toBeGreaterThanOrEqual(1)
    expect(onSubmitted).not.toHaveBeenCalled()
    expect((await sharp(j.destination).metadata()).width).toBe(64)
  })

  it('submits afresh, once, when the service no longer knows a resumed prediction', async () => {
    const ids: string[] = []
    const result = await provider().generate(job({}, { resume: { id: 'pred_nope' }, onSubmitted: ({ id }) => void ids.push(id) }))
    expect(server.submits).toHaveLength(1)
    expect(ids).toEqual([result.predictionId])
    expect(result.predictionId).not.toBe('pred_nope')
  })

  it('skips polling when the submit answer already has outputs (sync mode)', async () => {
    const j = job({ input: { enable_sync_mode: true } })
    await provider().generate(j)
    expect(server.polls).toBe(0)
    expect((await sharp(j.destination).metadata()).height).toBe(48)
  })

  it('decodes base64 outputs', async () => {
    const j = job({ input: { enable_base64_output: true } })
    const result = await provider().generate(j)
    expect(server.downloads).toBe(0)
    // read from the bytes: base64 carries no content type
    expect(result.contentType).toBe('image/png')
    const meta = await sharp(j.destination).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 48])
  })

  it('treats an unknown status as still running', async () => {
    server.options = { pendingStatus: 'Warming_Up_New_State' }
    await provider().generate(job())
    expect(server.downloads).toBe(1)
  })

  it('keeps polling through the 404s of a prediction that is warming up', async () => {
    let refused = 0
    server.options.intercept = req => {
      if (req.path.includes('/prediction/') && refused < 2) {
        refused++
        return { status: 404, body: { code: 404, message: 'prediction not found' } }
      }
      return 'continue'
    }
    await provider().generate(job())
    expect(refused).toBe(2)
    expect(server.downloads).toBe(1)
  })
})

describe('atlas provider: failures', () => {
  it.each(['wrapped', 'flat'] as const)('a failed prediction (%s) names the reason and the id', async shape => {
    server.options = { shape, fail: body => (String(body.prompt).includes('forbidden') ? 'content policy violation' : undefined) }
    const error = await failure(provider().generate(job({ prompt: 'something forbidden' })))
    expect(error.message).not.toContain('[imagegen]')
    expect(error.message).toContain('content policy violation')
    expect(error.message).toContain('pred_')
    expect(error.predictionId).toMatch(/^pred_\d+$/)
    expect(error.message).toContain(error.predictionId)
    expect(server.inFlight).toBe(0)
  })

  it('names a terminal status other than failed', async () => {
    server.options.intercept = req =>
      req.path.includes('/prediction/')
        ? { status: 200, body: { code: 200, data: { id: 'pred_x', status: 'CANCELLED', error: 'stopped by user' } } }
        : 'continue'
    const error = await failure(provider().generate(job()))
    expect(error.message).toContain('`CANCELLED`')
    expect(error.message).toContain('stopped by user')
  })

  it('refuses a completed prediction without outputs', async () => {
    server.options.intercept = req =>
      req.path.includes('/prediction/') ? { status: 200, body: { id: 'pred_x', status: 'completed', outputs: [] } } : 'continue'
    const error = await failure(provider().generate(job()))
    expect(error.message).toMatch(/no output image/)
  })

  it('401: points at ATLASCLOUD_API_KEY and never prints the key', async () => {
    const error = await failure(provider({ apiKey: SECRET }).generate(job()))
    expect(error.message).not.toContain('[imagegen]')
    expect(error.message).toContain('ATLASCLOUD_API_KEY')
    expect(error.status).toBe(401)
    expect(error.retryable).toBe(false)
    expect(`${error.message}\n${error.stack}`).not.toContain(SECRET)
    expect(server.submits).toHaveLength(0)
  })

  it('does not repeat a key that the service echoes back', async () => {
    server.options.intercept = req => ({ status: 401, body: { message: `bad token: ${String(req.headers.authorization)}` } })
    const error = await failure(provider({ apiKey: SECRET }).generate(job()))
    expect(error.message).toContain('bad token')
    expect(`${error.message}\n${error.stack}`).not.toContain(SECRET)
  })

  it('without a key: a clear error and no request', async () => {
    const error = await failure(createAtlasProvider({ baseURL: server.url }).generate(job()))
    expect(error.message).toMatch(/^no Atlas Cloud API key\..*`ATLASCLOUD_API_KEY`/)
    expect(server.requests).toBe(0)
  })

  it('422: invalid parameters with the service text', async () => {
    const error = await failure(provider().generate(job({ width: 5000 })))
    expect(error.message).toContain('rejected the parameters')
    expect(error.message).toContain('invalid size 5000x48')
    expect(error.status).toBe(422)
  })

  it('402 and "insufficient balance" under HTTP 200 both mean out of credit', async () => {
    server.options.intercept = () => ({ status: 402, body: { message: 'Payment required' } })
    expect((await failure(provider().generate(job()))).message).toContain('out of credit')
    server.options.intercept = () => ({ status: 200, body: { code: '400', message: 'Insufficient balance' } })
    const error = await failure(provider().generate(job()))
    expect(error.message).toContain('out of credit')
    expect(error.message).toContain('Insufficient balance')
  })

  it('403: refused', async () => {
    server.options.intercept = () => ({ status: 403, body: { detail: 'model not allowed for this account' } })
    const error = await failure(provider().generate(job()))
    expect(error.message).toContain('refused')
    expect(error.message).toContain('model not allowed for this account')
  })

  it('an envelope code other than 200 is an error under HTTP 200', async () => {
    server.options.intercept = () => ({ status: 200, body: { code: '500', message: 'internal error', data: null } })
    const error = await failure(provider().generate(job()))
    expect(error.message).toContain('code 500')
    expect(error.message).toContain('internal error')
  })

  it('cannot reach the service: a short message with the code, no undici stack', async () => {
    const closed = await startAtlasServer()
    const url = closed.url
    await closed.close()
    const error = await failure(provider({ baseURL: url }).generate(job()))
    expect(error.message).toBe(
      `cannot reach Atlas Cloud at ${url}: ECONNREFUSED (while submitting a prediction). Check the network and \`ATLASCLOUD_BASE_URL\`, then run again.`,
    )
    expect(error.stack ?? '').not.toMatch(/undici/)
    expect(error.retryable).toBe(true)
  })

  it('gives up at the deadline, naming the prediction and its last status', async () => {
    server.options = { latencyMs: 60_000 }
    const error = await failure(provider({ timeoutMs: 50 }).generate(job()))
    expect(error.message).toMatch(/prediction `pred_\d+` did not finish within 50ms \(last status `processing`\)/)
    expect(error.predictionId).toMatch(/^pred_\d+$/)
  })
})

describe('atlas provider: retries', () => {
  it('retries a poll on 429, honouring Retry-After', async () => {
    let limited = 0
    server.options.intercept = req => {
      if (req.path.includes('/prediction/') && limited < 2) {
        limited++
        return { status: 429, body: { message: 'slow down' }, headers: { 'retry-after': '0' } }
      }
      return 'continue'
    }
    await provider().generate(job())
    expect(limited).toBe(2)
    expect(server.downloads).toBe(1)
  })

  it('stops retrying a poll after maxRetries', async () => {
    let attempts = 0
    server.options.intercept = req => {
      if (!req.path.includes('/prediction/')) return 'continue'
      attempts++
      return { status: 503, body: { message: 'upstream busy' } }
    }
    const error = await failure(provider({ maxRetries: 2 }).generate(job()))
    expect(attempts).toBe(3)
    expect(error.message).toContain('upstream busy')
    expect(error).toMatchObject({ status: 503, retryable: true })
  })

  it('retries a download whose connection was reset', async () => {
    let resets = 0
    server.options.intercept = req => (req.path.startsWith('/outputs/') && resets++ === 0 ? 'reset' : 'continue')
    const j = job()
    await provider().generate(j)
    expect(resets).toBe(2)
    expect((await sharp(j.destination).metadata()).format).toBe('png')
  })

  it('never sends a submit twice', async () => {
    server.options.intercept = req => (req.method === 'POST' ? { status: 502, body: { message: 'bad gateway' } } : 'continue')
    const error = await failure(provider().generate(job()))
    expect(server.requests).toBe(1)
    expect(error.message).toContain('may have been billed')
    expect(error.retryable).toBe(false)
  })
})

describe('atlas provider: aborting', () => {
  it('rejects at once when aborted during a poll wait, and sends nothing more', async () => {
    server.options = { latencyMs: 60_000 }
    const controller = new AbortController()
    const pending = provider({ pollIntervalMs: 60_000 }).generate(
      job({}, { signal: controller.signal, onSubmitted: () => controller.abort() }),
    )
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' })
    const requests = server.requests
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(server.requests).toBe(requests)
    expect(server.polls).toBe(0)
  })

  it('rejects at once when aborted during a request', async () => {
    let release = () => {}
    server.options.intercept = req =>
      req.path.includes('/prediction/') ? new Promise(resolve => (release = () => resolve('continue'))) : 'continue'
    const controller = new AbortController()
    const pending = provider().generate(job({}, { signal: controller.signal }))
    await vi.waitFor(() => expect(server.requests).toBe(2))
    controller.abort()
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' })
    release()
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(server.requests).toBe(2)
  })

  it('does nothing when already aborted', async () => {
    const controller = new AbortController()
    controller.abort()
    await expect(provider().generate(job({}, { signal: controller.signal }))).rejects.toMatchObject({ name: 'AbortError' })
    expect(server.requests).toBe(0)
  })
})

describe('atlas download', () => {
  it('enforces the size cap and leaves no partial file', async () => {
    const first = await provider().generate(job())
    const destination = join(dir, 'capped.png')
    const error = await failure(saveOutput({ kind: 'url', url: `${server.url}/outputs/${first.predictionId}.png` }, destination, {
      signal: new AbortController().signal,
      timeoutMs: 5000,
      retry: { retries: 0, baseDelayMs: 1, maxDelayMs: 1 },
      maxBytes: 10,
      predictionId: first.predictionId,
      unreachableHint: 'Check the network.',
    }))
    expect(error.message).toContain('larger than')
    expect(existsSync(destination)).toBe(false)
  })

  it('says that an expired output is gone', async () => {
    const error = await failure(saveOutput({ kind: 'url', url: `${server.url}/outputs/pred_gone.png` }, join(dir, 'gone.png'), {
      signal: new AbortController().signal,
      timeoutMs: 5000,
      retry: { retries: 0, baseDelayMs: 1, maxDelayMs: 1 },
      predictionId: 'pred_gone',
      unreachableHint: 'Check the network.',
    }))
    expect(error.message).toContain('HTTP 404')
    expect(error.message).toContain('expire')
  })
})

describe('atlas protocol', () => {
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='

  it('finds the prediction id under data.id, id or predictionId', () => {
    const ids = [
      { code: 200, message: 'success', data: { id: 'pred_a', status: 'processing' } },
      { id: 'pred_b', status: 'processing', model: MODEL },
      { predictionId: 'pred_c' },
      { code: 200, data: { predictionId: 12 } },
    ].map(body => {
      const envelope = readEnvelope(body)
      return envelope.ok ? readPredictionId(envelope.payload) : 'error'
    })
    expect(ids).toEqual(['pred_a', 'pred_b', 'pred_c', '12'])
  })

  it('reads the envelope code as a number or a string; non-200 is an error', () => {
    expect(readCode(200)).toBe(200)
    expect(readCode('200')).toBe(200)
    expect(readCode('abc')).toBeUndefined()
    expect(readEnvelope({ code: '200', data: { id: 'x' } })).toEqual({ ok: true, payload: { id: 'x' } })
    expect(readEnvelope({ code: 401, message: 'Unauthorized' })).toEqual({ ok: false, code: 401, text: 'Unauthorized' })
    expect(readEnvelope({ code: '500', msg: 'boom' })).toEqual({ ok: false, code: 500, text: 'boom' })
    expect(readEnvelope({ code: 'oops' })).toMatchObject({ ok: false })
    expect(readEnvelope('not an object')).toMatchObject({ ok: false })
    expect(readEnvelope([1, 2])).toMatchObject({ ok: false })
  })

  it('classifies statuses case-insensitively; unknown ones are unknown', () => {
    for (const s of ['created', 'starting', 'queued', 'pending', 'processing', 'running', 'in_progress', 'IN_PROGRESS'])
      expect(classifyStatus(s), s).toBe('pending')
    for (const s of ['brand_new', 'paused', ''])
      expect(classifyStatus(s), s).toBe('unknown')
    for (const s of ['completed', 'succeeded', 'Succeeded', 'COMPLETED'])
      expect(classifyStatus(s), s).toBe('succeeded')
    for (const s of ['failed', 'error', 'canceled', 'cancelled', 'timeout', 'timed_out', 'Failed', ' TIMEOUT ', 'aborted', 'expired', 'rejected', 'terminated'])
      expect(classifyStatus(s), s).toBe('failed')
  })

  it('reads every output form', () => {
    expect(readOutput('https://storage.atlascloud.ai/outputs/result.png')).toEqual({ kind: 'url', url: 'https://storage.atlascloud.ai/outputs/result.png' })
    expect(readOutput('http://127.0.0.1:1/o.png')).toEqual({ kind: 'url', url: 'http://127.0.0.1:1/o.png' })
    expect(readOutput({ url: 'https://x.test/a.webp' })).toEqual({ kind: 'url', url: 'https://x.test/a.webp' })
    expect(readOutput(`data:image/png;base64,${png}`)).toEqual({ kind: 'data-url', contentType: 'image/png', base64: png })
    expect(readOutput(png)).toEqual({ kind: 'base64', base64: png })
    expect(readOutput('data:image/svg+xml,%3Csvg%2F%3E')).toEqual({
      kind: 'data-url',
      contentType: 'image/svg+xml',
      base64: Buffer.from('<svg/>').toString('base64'),
    })
    expect(readOutput('outputs/result.png')).toBeUndefined()
    expect(readOutput('ftp://x/y.png')).toBeUndefined()
    expect(readOutput(42)).toBeUndefined()
  })

  it('reads `output` when `outputs` is absent, and drops unreadable entries', () => {
    expect(readOutputs({ output: 'https://x.test/a.png' })).toEqual([{ kind: 'url', url: 'https://x.test/a.png' }])
    expect(readOutputs({ output: ['https://x.test/a.png', 'https://x.test/b.png'] })).toHaveLength(2)
    expect(readOutputs({ outputs: [null, { url: 'https://x.test/c.png' }] })).toEqual([{ kind: 'url', url: 'https://x.test/c.png' }])
    expect(readOutputs({})).toEqual([])
  })

  it('reads a whole prediction', () => {
    const prediction = readPrediction({
      id: 'pred_abc123',
      status: 'completed',
      outputs: ['https://storage.atlascloud.ai/outputs/result.png'],
      metrics: { predict_time: 8.3 },
      created_at: '2025-01-01T00:00:00Z',
      completed_at: '2025-01-01T00:00:10Z',
    })
    expect(prediction).toEqual({
      id: 'pred_abc123',
      status: 'completed',
      state: 'succeeded',
      outputs: [{ kind: 'url', url: 'https://storage.atlascloud.ai/outputs/result.png' }],
      error: undefined,
      createdAt: '2025-01-01T00:00:00Z',
      completedAt: '2025-01-01T00:00:10Z',
      predictTime: 8.3,
    })
    expect(readPrediction({ outputs: [png] }).state).toBe('succeeded')
    expect(readPrediction({ id: 'x' }).state).toBe('pending')
  })

  it('finds the error text in data.error, error, message, msg or detail', () => {
    expect(readPrediction({ status: 'failed', error: 'nsfw' }).error).toBe('nsfw')
    const wrapped = { code: 200, message: 'success', error: 'outer reason', data: { status: 'failed' } }
    expect(readPrediction(wrapped.data, wrapped).error).toBe('outer reason')
    expect(readErrorText({ msg: 'a' })).toBe('a')
    expect(readErrorText({ detail: [{ loc: ['body', 'width'], msg: 'too big' }] })).toBe('too big')
    expect(readErrorText({ error: { message: 'nested' } })).toBe('nested')
    expect(readErrorText({ message: 'success' })).toBeUndefined()
  })

  it('builds the flat submit body', () => {
    expect(buildSubmitBody({ model: MODEL, prompt: 'p', width: 16, height: 32, seed: -1, input: { num_images: 1 } })).toEqual({
      model: MODEL, prompt: 'p', width: 16, height: 32, seed: -1, num_images: 1,
    })
  })
})

describe('atlas retry policy', () => {
  it('reads Retry-After as seconds, an HTTP date, or retry_after in the body', () => {
    const now = Date.parse('2025-01-01T00:00:00Z')
    expect(readRetryAfter('3', undefined, now)).toBe(3000)
    expect(readRetryAfter('Wed, 01 Jan 2025 00:00:05 GMT', undefined, now)).toBe(5000)
    expect(readRetryAfter(undefined, { retry_after: 2 }, now)).toBe(2000)
    expect(readRetryAfter(undefined, { message: 'x' }, now)).toBeUndefined()
  })

  it('backs off exponentially with jitter up to a cap, and caps what the service asks', () => {
    const policy = { retries: 5, baseDelayMs: 100, maxDelayMs: 350 }
    expect([0, 1, 2, 3].map(n => retryDelay(n, policy, undefined, () => 1))).toEqual([100, 200, 350, 350])
    expect([0, 1, 2, 3].map(n => retryDelay(n, policy, undefined, () => 0))).toEqual([50, 100, 175, 175])
    for (let i = 0; i < 20; i++) expect(retryDelay(1, policy)).toBeGreaterThanOrEqual(100)
    expect(retryDelay(0, policy, 1234)).toBe(1234)
    expect(retryDelay(0, policy, 10 * 60_000)).toBe(60_000)
  })
})
