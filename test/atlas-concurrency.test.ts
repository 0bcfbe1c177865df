/**
 * A busy afternoon at the provider: every 429, to any request, is reported to the scheduler
 * (with when that request was sent), which then runs fewer predictions at once, and more again
 * as images arrive; a build through a storm of 429s and 503s still bills once per image.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { seededRandom, type InterceptedRequest, type InterceptResult } from './atlas-server'
import { atlas, build, collection, entriesOf, job, names, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()

const isSubmit = (req: { method: string; path: string }) => req.method === 'POST' && req.path.endsWith('/generateImage')

/** Time between the ends of the first wave's predictions: ample for a submit and its answer. */
const STAGGER_MS = 60

/**
 * How many predictions were in flight at the server as each accepted submit arrived (itself
 * included), from the `wave + 1`-th accepted submit on: the first `wave` start together whatever
 * happens, so what follows shows whether the pushback was heard. The first wave's predictions end
 * one by one, STAGGER_MS apart, as a real service's do (the stand-in would end them together).
 */
function inFlightAtSubmits(wave: number, refuse: (req: InterceptedRequest) => boolean = () => false): number[] {
  const seen: number[] = []
  let accepted = 0
  server.options.intercept = (req) => {
    if (!isSubmit(req)) return 'continue'
    if (refuse(req)) return { status: 429, body: { message: 'too many requests' }, headers: { 'retry-after': '0' } }
    server.options.latencyMs = STAGGER_MS * Math.min(++accepted, wave)
    if (accepted > wave) seen.push(server.inFlight + 1)
    return 'continue'
  }
  return seen
}

describe('atlas: every 429 reaches the scheduler', () => {
  it.each([
    ['a submit', (req: InterceptedRequest) => isSubmit(req)],
    ['a poll', (req: InterceptedRequest) => req.path.includes('/prediction/')],
    ['an output download', (req: InterceptedRequest) => req.path.startsWith('/outputs/')],
    ['an upload', (req: InterceptedRequest) => req.path.endsWith('/uploadMedia')],
  ])('on %s, with when the refused request was sent', async (_, matches) => {
    const dir = tempDir()
    mkdirSync(join(dir, 'refs'))
    const reference = join(dir, 'refs', 'sketch.png')
    writeFileSync(reference, await sharp({ create: { width: 8, height: 8, channels: 3, background: '#123456' } }).png().toBuffer())
    const refusedAt: number[] = []
    let refusals = 0
    server.options.intercept = (req) => {
      if (!matches(req) || refusals++ > 0) return 'continue'
      refusedAt.push(performance.now())
      return { status: 429, raw: 'slow down', headers: { 'retry-after': '0' } }
    }
    const reported: number[] = []
    await atlas(server).generate(job(dir, { image: reference }, { onRateLimited: (sentAt) => void reported.push(sentAt) }))
    expect(refusals).toBeGreaterThan(1)
    expect(reported).toHaveLength(1)
    // sent before the server saw it, and not long before: it is the refused request's own time
    expect(reported[0]).toBeLessThanOrEqual(refusedAt[0]!)
    expect(server.downloads).toBe(1)
  })

  it('an envelope code 429 under HTTP 200 counts too', async () => {
    let refused = 0
    server.options.intercept = (req) => (isSubmit(req) && refused++ === 0 ? { status: 200, body: { code: 429, message: 'rate limit exceeded' } } : 'continue')
    const reported: number[] = []
    await atlas(server).generate(job(tempDir(), {}, { onRateLimited: (sentAt) => void reported.push(sentAt) }))
    expect(reported).toHaveLength(1)
    expect(server.submits).toHaveLength(1)
  })
})

describe('atlas concurrency under 429s', () => {
  const concurrency = 8

  it('without pushback, `concurrency` predictions run at once, start to finish', async () => {
    const dir = tempDir()
    const later = inFlightAtSubmits(concurrency)
    await build(dir, atlas(server), { concurrency }).run(await entriesOf(dir, collection(names(16, 'calm'))))
    expect(server.maxInFlight).toBe(concurrency)
    // each prediction that ends makes room for the next: the service keeps `concurrency` busy
    expect(later).toHaveLength(16 - concurrency)
    expect(Math.max(...later)).toBe(concurrency)
  })

  it('a slot is free once the prediction is over: the next submit does not wait for the last output to download', async () => {
    const dir = tempDir()
    let downloading = 0
    let submitsWhileDownloading = 0
    server.options.latencyMs = 50
    server.options.intercept = async (req): Promise<InterceptResult> => {
      if (isSubmit(req) && downloading > 0) submitsWhileDownloading++
      if (!req.path.startsWith('/outputs/')) return 'continue'
      downloading++
      await new Promise((resolve) => setTimeout(resolve, 300))
      downloading--
      return 'continue'
    }
    const made = await build(dir, atlas(server), { concurrency: 2 }).run(await entriesOf(dir, collection(names(6, 'slow'))))
    expect(made).toHaveLength(6)
    expect(server.submits).toHaveLength(6)
    // at most 2 running at the service whenever a submit arrived, and later submits went out while outputs downloaded
    expect(server.maxInFlight).toBe(2)
    expect(submitsWhileDownloading).toBeGreaterThanOrEqual(4)
  })

  it('while 429s keep coming fewer run at once; once they stop, as many as before', async () => {
    const dir = tempDir()
    const provider = atlas(server, { maxRetries: 100 })
    // every other submit is refused, for the whole first build
    let submits = 0
    const later = inFlightAtSubmits(concurrency, () => submits++ % 2 === 0)
    const { scheduler, run } = build(dir, provider, { concurrency })
    const stormy = await entriesOf(dir, collection(names(16, 'storm')))
    await run(stormy)
    // every image made, each paid once
    expect(server.submits).toHaveLength(16)
    expect([...server.predictionsPerPrompt().values()]).toEqual(Array(16).fill(1))
    // after the first wave, the predictions in flight stay below `concurrency` (the calm build's are at it)
    expect(later).toHaveLength(16 - concurrency)
    expect(Math.max(...later)).toBeLessThan(concurrency)
    expect(scheduler.concurrency).toBeLessThan(concurrency)

    // the same scheduler, the storm over: the limit grows back as images arrive
    server.reset()
    server.options.intercept = undefined
    await run(await entriesOf(dir, collection(names(32, 'after')), 'after.images.yaml'))
    expect(server.maxInFlight).toBe(concurrency)
    expect(scheduler.concurrency).toBe(concurrency)
  })
})

describe('atlas chaos', () => {
  it('20 entries through 30% 429s and 20% 503s: every image cached, one prediction per spec', async () => {
    const dir = tempDir()
    const random = seededRandom(20240611)
    const refused = { 429: 0, 503: 0 }
    server.options.intercept = () => {
      const roll = random()
      if (roll < 0.3) {
        refused[429]++
        return { status: 429, body: { code: 429, message: 'rate limit exceeded' } }
      }
      if (roll < 0.5) {
        refused[503]++
        // a busy service that says when to come back (bare 503s: test/trust-provider.test.ts)
        return { status: 503, raw: '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>', headers: { 'retry-after': '0' } }
      }
      return 'continue'
    }
    const entries = await entriesOf(dir, collection(names(20, 'chaos')))
    const { cache, run } = build(dir, atlas(server, { maxRetries: 100 }))
    await run(entries)

    expect(refused[429]).toBeGreaterThan(0)
    expect(refused[503]).toBeGreaterThan(0)
    for (const entry of entries) expect(await cache.lookup(entry.key), entry.name).toBeDefined()
    const perPrompt = server.predictionsPerPrompt()
    expect(perPrompt.size).toBe(20)
    expect([...perPrompt.values()].every(n => n === 1)).toBe(true)
    for (const entry of entries) expect(perPrompt.get(entry.pixels.prompt)).toBe(1)
  })
})
