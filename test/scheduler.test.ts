import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ImageCache } from '../src/core/cache'
import { keyEntries, type KeyedEntry } from '../src/core/entries'
import { parseManifest } from '../src/core/manifest'
import { BillGuard, BudgetError, planImages } from '../src/core/plan'
import { GenerationError, Scheduler, type GenerateEvent } from '../src/core/scheduler'
import { createAtlasProvider } from '../src/providers/atlas'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { filesContaining, tempDir } from './helpers/temp'

const API_KEY = 'sk-imagegen-test-4f1c9e7d'
let server: AtlasServer

beforeAll(async () => {
  server = await startAtlasServer({ apiKey: API_KEY, latencyMs: 40 })
})
afterAll(() => server.close())
beforeEach(() => {
  server.reset()
  server.options.fail = undefined
})

async function entriesOf(dir: string, yaml: string, file = 'art.images.yaml'): Promise<KeyedEntry[]> {
  const path = join(dir, file)
  writeFileSync(path, yaml)
  return keyEntries(parseManifest(yaml, file), { manifestPath: path, root: dir, provider: 'atlas' })
}

function collection(names: string[], prompt = (name: string) => `A watercolor of ${name}`): string {
  return `defaults:\n  width: 64\n  height: 64\nimages:\n${names.map((n) => `  ${n}:\n    prompt: ${prompt(n)}\n`).join('')}`
}

function scheduler(dir: string, options: { concurrency?: number; maxNewImages?: number; events?: GenerateEvent[] } = {}) {
  const cache = new ImageCache(join(dir, '.imagegen'))
  const provider = createAtlasProvider({ apiKey: API_KEY, baseURL: server.url, pollIntervalMs: 5, maxPollIntervalMs: 20 })
  const s = new Scheduler({ provider, cache, concurrency: options.concurrency ?? 4, onEvent: (e) => options.events?.push(e) })
  // the bill guard every path that submits asks first (plan.ts)
  const guard = new BillGuard(options.maxNewImages ?? 25)
  return {
    cache,
    run: async (entries: KeyedEntry[]) => {
      const { missing } = planImages(entries, cache)
      guard.take(missing)
      return s.generate(missing)
    },
  }
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `image${i}`)

describe('the scheduler against the Atlas test server', () => {
  it('runs at most `concurrency` predictions at once and caches every image', async () => {
    const dir = tempDir()
    const entries = await entriesOf(dir, collection(names(12)))
    const events: GenerateEvent[] = []
    const { cache, run } = scheduler(dir, { concurrency: 3, events })
    const generated = await run(entries)
    expect(generated).toHaveLength(12)
    expect(server.submits).toHaveLength(12)
    expect(server.maxInFlight).toBe(3)
    for (const entry of entries) {
      const cached = await cache.lookup(entry.key)
      expect(cached).toBeDefined()
      const meta = await sharp(cached!.path).metadata()
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64])
      expect(cached!.record.predictionId).toMatch(/^pred_/)
    }
    expect(events.filter((e) => e.type === 'generated')).toHaveLength(12)
    expect(events.filter((e) => e.type === 'submitted')).toHaveLength(12)
    expect(events.at(-1)).toMatchObject({ type: 'finish', generated: 12, failed: 0 })
  })

  it('submits nothing the second time, and only the changed entry after an edit', async () => {
    const dir = tempDir()
    const first = await entriesOf(dir, collection(names(5)))
    await scheduler(dir).run(first)
    expect(server.submits).toHaveLength(5)

    server.reset()
    expect(await scheduler(dir).run(await entriesOf(dir, collection(names(5))))).toHaveLength(0)
    expect(server.submits).toHaveLength(0)

    const edited = await entriesOf(dir, collection(names(5), (n) => (n === 'image2' ? 'A pencil sketch of a fox' : `A watercolor of ${n}`)))
    await scheduler(dir).run(edited)
    expect(server.submits).toHaveLength(1)
    expect(server.submits[0]).toMatchObject({ prompt: 'A pencil sketch of a fox', width: 64, height: 64 })
  })

  it('sends an explicit seed and the model in every request', async () => {
    const dir = tempDir()
    const [entry] = await entriesOf(dir, collection(['one']))
    await scheduler(dir).run([entry!])
    expect(server.submits[0]).toMatchObject({ model: 'black-forest-labs/flux-schnell', seed: entry!.pixels.seed })
  })

  it('generates two entries with the same spec once', async () => {
    const dir = tempDir()
    const a = await entriesOf(dir, 'images:\n  a: { prompt: same, width: 64, height: 64 }\n  b: { prompt: same, width: 64, height: 64, alt: other }\n')
    const b = await entriesOf(dir, 'prompt: same\nwidth: 64\nheight: 64\n', 'other.images.yaml')
    const { cache, run } = scheduler(dir)
    const plan = planImages([...a, ...b], cache)
    expect(plan.images).toHaveLength(1)
    expect(plan.images[0]!.entries).toHaveLength(3)
    await run([...a, ...b])
    expect(server.submits).toHaveLength(1)
  })

  it('shares one job between callers that ask for the same key at once', async () => {
    const dir = tempDir()
    const entries = await entriesOf(dir, collection(['x', 'y']))
    const { run } = scheduler(dir)
    await Promise.all([run(entries), run(entries), run([entries[0]!])])
    expect(server.submits).toHaveLength(2)
  })

  it('reports a failed prediction by entry with the provider error, and caches the others', async () => {
    const dir = tempDir()
    server.options.fail = (body) => (String(body.prompt).includes('forbidden') ? 'prompt refused by the safety checker' : undefined)
    const entries = await entriesOf(dir, collection(['good', 'bad', 'fine'], (n) => (n === 'bad' ? 'A forbidden thing' : `A ${n} thing`)))
    const { cache, run } = scheduler(dir)
    const error = await run(entries).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(GenerationError)
    const message = (error as GenerationError).message
    expect(message).toContain('art.images.yaml:')
    expect(message).toContain('`bad`')
    expect(message).toContain('prompt refused by the safety checker')
    expect(message).toMatch(/pred_\d+/)
    expect(message).not.toContain('`good`')
    expect((error as GenerationError).generated).toHaveLength(2)
    expect(await cache.lookup(entries[0]!.key)).toBeDefined()
    expect(await cache.lookup(entries[2]!.key)).toBeDefined()
    expect(await cache.lookup(entries[1]!.key)).toBeUndefined()
    // A definite failure leaves no journal entry: the next run submits afresh.
    expect(await cache.readPending(entries[1]!.key)).toBeUndefined()
  })

  it('refuses before submitting anything when more than maxNewImages are missing', async () => {
    const dir = tempDir()
    const entries = await entriesOf(dir, collection(names(6)))
    const error = await scheduler(dir, { maxNewImages: 5 }).run(entries).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BudgetError)
    expect((error as Error).message).toMatch(/6 new images would be generated, more than `maxNewImages` allows \(5\)/)
    expect((error as Error).message).toContain('--max-new 6')
    expect(server.requests).toBe(0)
    await scheduler(dir, { maxNewImages: 6 }).run(entries)
    expect(server.submits).toHaveLength(6)
  })

  it('never writes the API key into any file', async () => {
    const dir = tempDir()
    server.options.fail = (body) => (String(body.prompt).includes('image1') ? 'nope' : undefined)
    await scheduler(dir).run(await entriesOf(dir, collection(names(3)))).catch(() => {})
    expect(filesContaining(dir, API_KEY)).toEqual([])
  })
})
