/** Polling as the live service makes it hard: statuses, stalls, resets, busy answers, deadlines. */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { nextPollWait } from '../src/prediction/runtime'
import { openProject } from '../src/index'
import { startAtlasServer, type InterceptResult } from './atlas-server'
import type { AtlasProviderOptions } from '../src/providers/atlas'
import type { Provider } from '../src/providers/types'
import { atlas, build, collection, entriesOf, failure, job, MODEL, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()
const dir = tempDir('imagegen-poll-')

const isPoll = (path: string) => path.startsWith('/api/v1/model/prediction/')

/** The first `times` polls get `answer`; then the server answers normally. Returns the count. */
function troublePolls(times: number, answer: InterceptResult): { count: number } {
  const seen = { count: 0 }
  server.options.intercept = req => {
    if (isPoll(req.path) && seen.count < times) {
      seen.count++
      return answer
    }
    return 'continue'
  }
  return seen
}

describe('atlas polling: statuses', () => {
  it.each(['created', 'starting', 'queued', 'pending', 'processing', 'running', 'in_progress', 'IN_PROGRESS', 'a_status_never_seen'])(
    'keeps polling while the status is %s',
    async pendingStatus => {
      server.options = { pendingStatus, latencyMs: 20 }
      const j = job(dir)
      await atlas(server).generate(j)
      expect(server.polls).toBeGreaterThanOrEqual(1)
      expect((await sharp(j.destination).metadata()).format).toBe('png')
    },
  )

  it.each(['failed', 'error', 'canceled', 'cancelled', 'timeout', 'TIMEOUT', 'timed_out', 'aborted', 'expired', 'rejected', 'terminated'])('%s ends the prediction with its reason and id', async status => {
    server.options.intercept = req =>
      isPoll(req.path) ? { status: 200, body: { code: 200, data: { id: 'pred_77', status, error: 'the model gave up' } } } : 'continue'
    const error = await failure(atlas(server).generate(job(dir)))
    expect(error.message).toMatch(/^Atlas Cloud prediction `pred_\d+` (failed|ended as `\w+`): the model gave up\. /)
    expect(error.predictionId).toMatch(/^pred_\d+$/)
    expect(error.retryable).toBe(false)
  })

  it('an unknown status is polled only until the deadline, then the prediction is given up as over', async () => {
    server.options = { pendingStatus: 'Mystery_State', latencyMs: 60_000 }
    const error = await failure(atlas(server, { timeoutMs: 60 }).generate(job(dir)))
    expect(error.message).toMatch(/^Atlas Cloud prediction `pred_\d+` is still `Mystery_State`, a status unplugin-imagegen does not know, more than 60ms after its submit; it is given up\. Run again to generate it afresh/)
    expect(error.predictionId).toBe(error.message.match(/`(pred_\d+)`/)![1])
    // a status never seen before must not block the image on every run: its journal entry goes
    expect(error).toMatchObject({ predictionOver: true, retryable: false })
  })
})

describe('atlas polling: the network and the service misbehave', () => {
  it('a poll that never answers hits the per-request timeout and is sent again', async () => {
    const hung = troublePolls(1, 'hang')
    const j = job(dir)
    await atlas(server, { requestTimeoutMs: 100 }).generate(j)
    expect(hung.count).toBe(1)
    expect(server.polls).toBeGreaterThanOrEqual(1)
    expect(server.downloads).toBe(1)
    expect(server.submits).toHaveLength(1)
  })

  it('a connection reset mid-poll is retried', async () => {
    const reset = troublePolls(2, 'reset')
    await atlas(server).generate(job(dir))
    expect(reset.count).toBe(2)
    expect(server.downloads).toBe(1)
  })

  it.each([500, 502, 503, 504])('%i with an HTML body on a poll is retried', async status => {
    const busy = troublePolls(2, { status, raw: `<html><body><h1>${status} Bad Gateway</h1></body></html>` })
    await atlas(server).generate(job(dir))
    expect(busy.count).toBe(2)
    expect(server.submits).toHaveLength(1)
    expect(server.downloads).toBe(1)
  })

  it.each([
    ['seconds', { headers: { 'retry-after': '0' } }],
    ['an HTTP date', { headers: { 'retry-after': new Date(Date.now() - 5000).toUTCString() } }],
    ['retry_after in the body', { body: { code: 429, message: 'slow down', retry_after: '0' } }],
  ] as const)('429 on a poll with Retry-After as %s is retried', async (_, extra) => {
    const limited = troublePolls(2, { status: 429, ...extra })
    await atlas(server).generate(job(dir))
    expect(limited.count).toBe(2)
    expect(server.downloads).toBe(1)
  })

  it('HTML where JSON was expected, on every poll: the message shows the page, not a parse error', async () => {
    troublePolls(100, { status: 502, raw: '<html><title>502 Bad Gateway</title></html>' })
    const error = await failure(atlas(server, { maxRetries: 1 }).generate(job(dir)))
    expect(error.message).toMatch(/^Atlas Cloud failed while polling prediction `pred_\d+` \(HTTP 502: <html><title>502 Bad Gateway/)
    expect(error.message).toContain('run again later')
  })

  it('404 and 400 during the warm-up after a submit are waited out', async () => {
    let n = 0
    server.options.intercept = req =>
      isPoll(req.path) && n++ < 4 ? { status: n % 2 ? 404 : 400, body: { code: n % 2 ? 404 : 400, message: 'prediction not found' } } : 'continue'
    await atlas(server, { warmUpMs: 10_000 }).generate(job(dir))
    expect(server.downloads).toBe(1)
    expect(server.submits).toHaveLength(1)
  })

  it('404 after the warm-up: the service does not know the prediction', async () => {
    server.options.intercept = req => (isPoll(req.path) ? { status: 404, body: { code: 404, message: 'prediction not found' } } : 'continue')
    const error = await failure(atlas(server, { warmUpMs: 1 }).generate(job(dir)))
    expect(error.message).toMatch(/^Atlas Cloud does not know prediction `pred_\d+` \(HTTP 404: prediction not found\); .*Run again to generate the image afresh\.$/)
    expect(error).toMatchObject({ status: 404, retryable: false })
    expect(server.submits).toHaveLength(1)
  })

  it('a prediction stuck in processing fails at the deadline; the next run resumes it without paying again', async () => {
    const project = tempDir()
    server.options = { latencyMs: 60_000 }
    const entries = await entriesOf(project, collection(['stuck']))
    const first = build(project, atlas(server, { timeoutMs: 50 }))
    const error = (await first.run(entries).catch((e: unknown) => e)) as Error
    expect(error.message).toMatch(/did not finish within 50ms \(last status `processing`\)/)
    const pending = await first.cache.readPending(entries[0]!.key)
    expect(pending?.state.id).toMatch(/^pred_\d+$/)

    server.finish()
    await build(project, atlas(server)).run(entries)
    expect(server.submits).toHaveLength(1)
    expect((await first.cache.lookup(entries[0]!.key))?.record.predictionId).toBe(pending!.state.id)
    expect(await first.cache.readPending(entries[0]!.key)).toBeUndefined()
  })
})

describe('atlas polling: the schedule', () => {
  /** The polls `generate` of one image takes, with the plugin's default schedule unless `options` say otherwise. */
  async function pollsOf(provider: Provider): Promise<number> {
    const before = server.polls
    await provider.generate(job(dir))
    return server.polls - before
  }
  const byDefault = (options: AtlasProviderOptions = {}) => atlas(server, { pollIntervalMs: undefined, maxPollIntervalMs: undefined, ...options })

  it('learns the service time in the run: after one 1.5 s prediction, the next is polled once, when it is done', async () => {
    server.options = { latencyMs: 1500 }
    const provider = byDefault()
    // no history: every 250 ms, so it is seen done at the 6th poll (250 … 1250 ms, then 1562 ms)
    expect(await pollsOf(provider)).toBeLessThanOrEqual(6)
    expect(await pollsOf(provider)).toBe(1)
  })

  it.each([
    ['`predictTime`', { predictTime: 1 }],
    ['`createdAt` and `completedAt`', { createdAt: '2025-01-01T00:00:00.000Z', completedAt: '2025-01-01T00:00:01.000Z' }],
  ])('learns the service time from the records: %s', async (_, times) => {
    server.options = { latencyMs: 1000 }
    const provider = byDefault()
    provider.learn!([{ provider: 'atlas', model: MODEL, ...times }])
    expect(await pollsOf(provider)).toBe(1)
  })

  it("does not learn from another provider's records, nor another model's", async () => {
    server.options = { latencyMs: 1000 }
    const provider = byDefault()
    provider.learn!([{ provider: 'placeholder', model: MODEL, predictTime: 1 }, { provider: 'atlas', model: 'another/model', predictTime: 1 }])
    expect(await pollsOf(provider)).toBeGreaterThan(1)
  })

  it('`pollIntervalMs` set: the fixed schedule, whatever was learned', async () => {
    server.options = { latencyMs: 600 }
    const provider = byDefault({ pollIntervalMs: 200 })
    provider.learn!([{ provider: 'atlas', model: MODEL, predictTime: 0.6 }])
    // at 200, 500 and 950 ms
    expect(await pollsOf(provider)).toBe(3)
    expect(await pollsOf(provider)).toBe(3)
  })

  it('starts at the interval and grows ×1.5 to the cap', () => {
    const settings = { pollIntervalMs: 1000, maxPollIntervalMs: 5000 }
    const waits = [1000]
    while (waits.length < 7) waits.push(nextPollWait(waits.at(-1)!, settings))
    expect(waits).toEqual([1000, 1500, 2250, 3375, 5000, 5000, 5000])
    // a resumed prediction is looked at once (0), then on the same schedule
    expect(nextPollWait(0, settings)).toBe(1000)
  })
})

describe('what the cache says about prediction times', () => {
  it('schedules the polls of a new run: a plan with cached records makes the next image one poll', async () => {
    const server = await startAtlasServer({ apiKey: 'sk-learn-4c1d', latencyMs: 300 })
    try {
      const root = tempDir('imagegen-learn-')
      const files = (prompts: string[]) => `images:\n${prompts.map((p, i) => `  e${i}:\n    prompt: ${p}\n    width: 64\n    height: 64\n`).join('')}`
      const manifest = join(root, 'art.images.yaml')
      const options = { root, apiKey: 'sk-learn-4c1d', baseURL: server.url }
      writeFileSync(manifest, files(['a lighthouse']))
      const first = openProject(options)
      await first.scheduler().generate(first.plan((await first.read(manifest)).entries).missing)
      // a new process: nothing learned but what the records say
      writeFileSync(manifest, files(['a lighthouse', 'a harbour']))
      const second = openProject(options)
      server.reset()
      await second.scheduler().generate(second.plan((await second.read(manifest)).entries).missing)
      expect(server.submits).toHaveLength(1)
      expect(server.polls).toBe(1)
    } finally {
      await server.close()
    }
  })
})
