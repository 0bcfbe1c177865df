/**
 * A busy afternoon at the provider: while 429s keep coming fewer predictions run at once,
 * more again once they stop; a build through a storm of 429s and 503s still bills once.
 */
import { describe, expect, it } from 'vitest'
import { AdaptiveLimiter } from '../src/providers/atlas/limiter'
import { seededRandom } from './atlas-server'
import { atlas, build, collection, entriesOf, names, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()


const isSubmit = (req: { method: string; path: string }) => req.method === 'POST' && req.path.endsWith('/generateImage')

describe('the adaptive limiter', () => {
  const never = new AbortController().signal

  it('halves on a 429, once per burst, and grows back by one per completed prediction', async () => {
    const limiter = new AdaptiveLimiter()
    const slots = await Promise.all(Array.from({ length: 8 }, () => limiter.acquire(never)))
    expect(limiter.current).toBe(Infinity)
    const burst = limiter.mark()
    limiter.rateLimited(burst)
    limiter.rateLimited(burst) // answers to requests sent together: already acted on
    expect(limiter.current).toBe(4)
    limiter.rateLimited(limiter.mark())
    expect(limiter.current).toBe(2)
    for (const slot of slots) slot.release()
    limiter.succeeded()
    expect(limiter.current).toBe(3)
  })

  it('holds the ones over the limit until a place frees, and lets an abort out at once', async () => {
    const limiter = new AdaptiveLimiter()
    const first = await limiter.acquire(never)
    limiter.rateLimited(limiter.mark())
    expect(limiter.current).toBe(1)
    let second = false
    const waiting = limiter.acquire(never).then(slot => ((second = true), slot))
    const controller = new AbortController()
    const aborted = limiter.acquire(controller.signal)
    controller.abort(new Error('stop'))
    await expect(aborted).rejects.toThrow('stop')
    await Promise.resolve()
    expect(second).toBe(false)
    first.release()
    ;(await waiting).release()
    expect(second).toBe(true)
  })
})

describe('atlas concurrency under 429s', () => {
  const concurrency = 8

  it('without pushback, `concurrency` predictions run at once', async () => {
    const dir = tempDir()
    await build(dir, atlas(server), { concurrency }).run(await entriesOf(dir, collection(names(16, 'calm'))))
    expect(server.maxInFlight).toBe(concurrency)
  })

  it('while 429s keep coming fewer run at once; once they stop, as many as before', async () => {
    const dir = tempDir()
    const provider = atlas(server, { maxRetries: 100 })
    // every other submit is refused, for the whole first build
    let submits = 0
    server.options.intercept = req =>
      isSubmit(req) && submits++ % 2 === 0 ? { status: 429, body: { message: 'too many requests' }, headers: { 'retry-after': '0' } } : 'continue'
    const stormy = await entriesOf(dir, collection(names(16, 'storm')))
    await build(dir, provider, { concurrency }).run(stormy)
    expect(server.submits).toHaveLength(16)
    // without the limiter the retries fill every place: maxInFlight reaches `concurrency`
    expect(server.maxInFlight).toBeLessThan(concurrency)

    // the same provider instance, the storm over: the limit grows back
    server.reset()
    server.options.intercept = undefined
    await build(dir, provider, { concurrency }).run(await entriesOf(dir, collection(names(32, 'after')), 'after.images.yaml'))
    expect(server.maxInFlight).toBe(concurrency)
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
        // a busy service says when to come back; a bare 503 would not be trusted for a submit
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
