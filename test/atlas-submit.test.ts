/**
 * A submit is billed whenever it reaches the service, so it is sent again only when the
 * service surely did not take it: 429, any 503, or a connection refused before sending.
 */
import { describe, expect, it, vi } from 'vitest'
import { startAtlasServer, type AtlasServer, type InterceptResult } from './atlas-server'
import { atlas, failure, job, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()
const dir = tempDir('imagegen-submit-')


const HTML = '<!doctype html><html><head><title>Service Unavailable</title></head><body><h1>503</h1></body></html>'

/** The first `times` submits get `answer`; the rest go through. */
function refuseSubmits(times: number, answer: Exclude<InterceptResult, string>) {
  let refused = 0
  server.options.intercept = req => {
    if (req.method === 'POST' && refused < times) {
      refused++
      return answer
    }
    return 'continue'
  }
}
const makeAnswer = (status: number, extra: Omit<Exclude<InterceptResult, string>, 'status'> = {}) => ({ status, ...extra })

describe('atlas submit: sent again only when the service did not take it', () => {
  it('429 with Retry-After in seconds: waits, sends again, one prediction', async () => {
    refuseSubmits(2, makeAnswer(429, { body: { message: 'rate limited' }, headers: { 'retry-after': '0' } }))
    await atlas(server).generate(job(dir))
    expect(server.submitAttempts).toBe(3)
    expect(server.submits).toHaveLength(1)
    expect(server.downloads).toBe(1)
  })

  it('429 with Retry-After as an HTTP date', async () => {
    refuseSubmits(1, makeAnswer(429, { body: { message: 'rate limited' }, headers: { 'retry-after': new Date(Date.now() - 1000).toUTCString() } }))
    await atlas(server).generate(job(dir))
    expect(server.submitAttempts).toBe(2)
    expect(server.submits).toHaveLength(1)
  })

  it('429 with retry_after in the body', async () => {
    refuseSubmits(1, makeAnswer(429, { body: { code: 429, message: 'too many requests', retry_after: 0 } }))
    await atlas(server).generate(job(dir))
    expect(server.submitAttempts).toBe(2)
    expect(server.submits).toHaveLength(1)
  })

  it('503 with Retry-After: the service says it is busy, so it is sent again', async () => {
    refuseSubmits(2, makeAnswer(503, { raw: HTML, headers: { 'retry-after': '0' } }))
    await atlas(server).generate(job(dir))
    expect(server.submitAttempts).toBe(3)
    expect(server.submits).toHaveLength(1)
  })

  it('a bare 503 (no Retry-After): HTTP says "not handled", so it is sent again', async () => {
    refuseSubmits(2, makeAnswer(503, { raw: HTML }))
    await atlas(server).generate(job(dir))
    expect(server.submitAttempts).toBe(3)
    expect(server.submits).toHaveLength(1)
  })

  it('a 503 that never ends: gives up after maxSubmitRetries, and says nothing of a bill', async () => {
    server.options.intercept = req => (req.method === 'POST' ? { status: 503, raw: HTML } : 'continue')
    const error = await failure(atlas(server, { maxSubmitRetries: 5 }).generate(job(dir)))
    expect(server.submitAttempts).toBe(6)
    expect(error.message).toMatch(/^Atlas Cloud failed while submitting a prediction \(HTTP 503: .*\)\. The fault is on the service's side; run again later\.$/)
    expect(error).toMatchObject({ status: 503, retryable: true })
  })

  it("a service that keeps answering 429 with `Retry-After: 60` is given up at the image's deadline, not waited on", async () => {
    server.options.intercept = (req) => (req.method === 'POST' ? { status: 429, body: { message: 'busy' }, headers: { 'retry-after': '60' } } : 'continue')
    const error = await failure(atlas(server, { timeoutMs: 2000 }).generate(job(dir)))
    expect(server.submitAttempts).toBe(1)
    expect(error).toMatchObject({ status: 429 })
    expect(server.submits).toHaveLength(0)
  })

  it('a connection refused before sending is sent again once the service is back', async () => {
    const gone = await startAtlasServer()
    const port = Number(new URL(gone.url).port)
    await gone.close()
    let back: AtlasServer | undefined
    let ticks = 0
    // the service comes back on the same port a few retries later
    const provider = atlas(server, { baseURL: `http://127.0.0.1:${port}`, maxRetries: 50, retryDelayMs: 20, maxRetryDelayMs: 20 })
    const pending = provider.generate(job(dir))
    const revive = (async () => {
      while (!back) {
        await new Promise(resolve => setTimeout(resolve, 15))
        if (++ticks >= 3) back = await startAtlasServer({}, { port })
      }
    })()
    await revive
    await pending
    expect(back!.submitAttempts).toBe(1)
    expect(back!.submits).toHaveLength(1)
    await back!.close()
  })

  it.each([500, 502, 504])('%i with an HTML body: not sent again, and the message says why', async status => {
    server.options.intercept = req => (req.method === 'POST' ? { status, raw: HTML.replace('503', String(status)) } : 'continue')
    const error = await failure(atlas(server).generate(job(dir)))
    expect(server.submitAttempts).toBe(1)
    expect(server.requests).toBe(1)
    expect(error.message).toMatch(/^Atlas Cloud failed while submitting a prediction \(HTTP \d+: .*Service Unavailable/)
    expect(error.message).toContain('may have been billed anyway, so it was not sent again')
    expect(error.message).toContain('run again')
    expect(error).toMatchObject({ status, retryable: false })
  })

  it('a connection dropped after the body was sent: no second submit', async () => {
    server.options.intercept = req => (req.method === 'POST' ? 'reset' : 'continue')
    const error = await failure(atlas(server).generate(job(dir)))
    expect(server.submitAttempts).toBe(1)
    expect(server.requests).toBe(1)
    expect(error.message).toMatch(/^cannot reach Atlas Cloud at .*: \w+ \(while submitting a prediction\)\. The submit may have been billed/)
    expect(error.retryable).toBe(false)
  })

  it('a submit that never answers times out and is not sent again', async () => {
    server.options.intercept = req => (req.method === 'POST' ? 'hang' : 'continue')
    const error = await failure(atlas(server, { requestTimeoutMs: 50 }).generate(job(dir)))
    expect(server.submitAttempts).toBe(1)
    expect(error.message).toContain('did not answer within 50ms')
    expect(error.message).toContain('may have been billed')
  })

  it('a 429 that never ends: gives up after maxSubmitRetries and says what to do', async () => {
    server.options.intercept = req => (req.method === 'POST' ? { status: 429, body: { message: 'slow down' } } : 'continue')
    const error = await failure(atlas(server, { maxSubmitRetries: 3 }).generate(job(dir)))
    expect(server.submitAttempts).toBe(4)
    expect(server.submits).toHaveLength(0)
    expect(error.message).toMatch(/^Atlas Cloud is rate limiting requests while submitting a prediction \(HTTP 429: slow down\)\. Run again in a while, or lower `concurrency`\.$/)
    expect(error).toMatchObject({ status: 429, retryable: true })
  })

  it('an abort during the wait a 429 asked for ends it at once; nothing more is sent', async () => {
    server.options.intercept = req => (req.method === 'POST' ? { status: 429, body: { message: 'later' }, headers: { 'retry-after': '3600' } } : 'continue')
    const controller = new AbortController()
    const pending = atlas(server).generate(job(dir, {}, { signal: controller.signal }))
    await vi.waitFor(() => expect(server.submitAttempts).toBe(1))
    controller.abort(new Error('the build stopped'))
    await expect(pending).rejects.toThrow('the build stopped')
    const requests = server.requests
    await new Promise(resolve => setTimeout(resolve, 30))
    expect(server.requests).toBe(requests)
    expect(server.submitAttempts).toBe(1)
  })

  it('an abort while the submit is on its way still journals the prediction it started, then stops', async () => {
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    server.options.intercept = (req) => (req.method === 'POST' ? held.then(() => 'continue' as const) : 'continue')
    const controller = new AbortController()
    const journaled: string[] = []
    const pending = atlas(server).generate(job(dir, {}, { signal: controller.signal, onSubmitted: ({ id }) => void journaled.push(id) }))
    await vi.waitFor(() => expect(server.submitAttempts).toBe(1))
    controller.abort(new Error('the build stopped'))
    release()
    await expect(pending).rejects.toThrow('the build stopped')
    // the service took it (it is billed): its id reached the journal, and nothing was polled
    expect(server.submits).toHaveLength(1)
    expect(journaled).toEqual([expect.stringMatching(/^pred_\d+$/)])
    expect(server.polls).toBe(0)
  })

  it.each([
    [401, { message: 'Unauthorized' }, /rejected the API key .*Check that `ATLASCLOUD_API_KEY` holds a valid key/],
    [402, { message: 'Payment required' }, /out of credit .*Add credit to the account/],
    [403, { message: 'Forbidden' }, /refused the request .*may use this model/],
    [422, { detail: [{ loc: ['body', 'width'], msg: 'too big' }] }, /rejected the parameters .*too big.*Check the image spec/],
    [200, { code: '400', message: 'Insufficient balance' }, /out of credit/],
  ] as const)('%i fails at once: one attempt, a message that says what to do', async (status, body, message) => {
    server.options.intercept = () => ({ status, body })
    const error = await failure(atlas(server).generate(job(dir)))
    expect(server.requests).toBe(1)
    expect(error.message).not.toContain('[imagegen]')
    expect(error.message).toMatch(message)
    expect(error.retryable).toBe(false)
  })
})

describe('atlas errors never carry the key', () => {
  const KEY = 'sk-atlas-RECOGNISABLE-fake-key-93c1'

  it.each([400, 401, 402, 403, 404, 422, 429, 500, 502, 503, 504])('%i on a submit and on a poll, with the key echoed back', async status => {
    server.options = { apiKey: KEY }
    const messages: string[] = []
    for (const step of ['submit', 'poll']) {
      server.options.intercept = req =>
        (step === 'submit') === (req.method === 'POST')
          ? { status, body: { code: status, message: `request with ${String(req.headers.authorization)} refused`, key: KEY } }
          : 'continue'
      const error = await failure(atlas(server, { apiKey: KEY, maxRetries: 1 }).generate(job(dir)))
      messages.push(`${error.message}\n${error.stack}`)
    }
    for (const message of messages) {
      expect(message).not.toContain('[imagegen]')
      expect(message).toContain('refused')
      expect(message).not.toContain(KEY)
    }
  })
})
