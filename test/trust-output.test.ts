/**
 * What is written to the cache (issue 14, items 3, 4, 6, 7): a delivered image is committed only once it decodes whole
 * and is near the asked size; a failure of our own tooling (sharp, the journal folder) never throws away or abandons a
 * paid prediction. Against the loopback Atlas server, through the real scheduler.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { crc32, deflateSync } from 'node:zlib'
import sharp from 'sharp'
import { describe, expect, it, vi } from 'vitest'
import { barReporter } from '../src/cli/progress'
import { ImageCache } from '../src/core/cache'
import { ImagegenError, ProviderError } from '../src/core/errors'
import { planImages } from '../src/core/plan'
import { Scheduler, type GenerateEvent, type GenerationError } from '../src/core/scheduler'
import { atlas, build, collection, entriesOf, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()

/** A PNG whose header says `width` × `height` (grey, 8 bits) but whose data are a single row: tiny on disk. */
function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
    const length = Buffer.alloc(4)
    length.writeUInt32BE(data.length)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(body) >>> 0)
    return Buffer.concat([length, body, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth; colour type 0 (grey), the rest 0
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(width + 1))), chunk('IEND', Buffer.alloc(0))])
}

/** The modules that make and keep an image: these, or fresh copies that load a mocked sharp. */
type Core = { Scheduler: typeof Scheduler; ImageCache: typeof ImageCache }

/** One image of 64 × 64, made by a scheduler over `dir`: its error (if any), the journal and the cache after. */
async function generateOnce(dir: string, core: Core = { Scheduler, ImageCache }) {
  const entries = await entriesOf(dir, collection(['one']))
  const cache = new core.ImageCache(join(dir, '.imagegen'))
  const scheduler = new core.Scheduler({ provider: atlas(server), cache, concurrency: 4 })
  const error = await scheduler.generate(planImages(entries, cache).missing).then(() => undefined, (e: Error) => e)
  const failure = (error as GenerationError | undefined)?.failures?.[0]?.error ?? error
  return { failure, pending: await cache.readPending(entries[0]!.key), cached: cache.lookup(entries[0]!.key) }
}

describe('a download that is not a whole image', () => {
  it('half a PNG with a matching content-length is not committed; the journal is kept and the next run downloads it again', async () => {
    const dir = tempDir()
    const noise = Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) % 251))
    const png = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer()
    server.options.download = () => ({ body: png.subarray(0, png.length >> 1) })
    const first = await generateOnce(dir)
    expect(first.failure).toBeInstanceOf(ProviderError)
    expect(first.failure!.message).toMatch(/^what atlas delivered for prediction `pred_\d+` does not decode whole \(sharp says: .+\)/)
    expect(first.failure!.message).toContain('the next run downloads it again without a new submit')
    expect((first.failure as ProviderError).predictionOver).toBe(false)
    expect(first.cached).toBeUndefined()
    expect(first.pending?.state.id).toMatch(/^pred_\d+$/)

    server.options.download = undefined
    const second = await generateOnce(dir)
    expect(second.failure).toBeUndefined()
    expect(server.submits).toHaveLength(1)
    expect((await sharp(second.cached!.path).stats()).channels).toHaveLength(3)
  })
})

describe('delivered pixels', () => {
  it('16000 × 16000 pixels for a 64 × 64 spec are refused before anything is committed, naming both sizes', async () => {
    const dir = tempDir()
    server.options.download = () => ({ body: pngHeader(16000, 16000) })
    const { failure, pending, cached } = await generateOnce(dir)
    expect(failure!.message).toMatch(/^what atlas delivered for prediction `pred_\d+` is 16000 × 16000 pixels for a 64 × 64 spec, more than twice off; nothing was cached\./)
    expect([cached, pending]).toEqual([undefined, undefined])
  })

  it("a decompression bomb over sharp's pixel limit is refused naming the limit, not as \"not an image\"", async () => {
    const dir = tempDir()
    server.options.download = () => ({ body: pngHeader(20000, 20000) })
    const { failure, cached } = await generateOnce(dir)
    expect(failure!.message).toContain('has more pixels than sharp decodes (`limitInputPixels`, 268,402,689 pixels)')
    expect(failure!.message).not.toContain('not a PNG')
    expect(cached).toBeUndefined()
  })
})

describe('the journal folder', () => {
  it('not writable (a file in its place): nothing is submitted, and the error names the folder', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, '.imagegen'), { recursive: true })
    writeFileSync(join(dir, '.imagegen/pending'), 'not a folder')
    const { failure } = await generateOnce(dir)
    expect(failure).toBeInstanceOf(ImagegenError)
    expect(failure!.message).toContain(`cannot write the journal of submitted predictions in ${join(dir, '.imagegen/pending')}`)
    expect(failure!.message).toContain('nothing was submitted')
    expect(server.submitAttempts).toBe(0)
  })

  it('failing only after the submit: the prediction is still polled and cached, and its id is printed', async () => {
    const dir = tempDir()
    server.options.intercept = (req) => {
      // the journal folder goes away while the service takes the submit
      if (req.method === 'POST') {
        rmSync(join(dir, '.imagegen/pending'), { recursive: true, force: true })
        writeFileSync(join(dir, '.imagegen/pending'), 'not a folder')
      }
      return 'continue'
    }
    const printed: string[] = []
    const stderr = Object.assign(new PassThrough(), { columns: 80 })
    const reporter = barReporter({ out: () => {}, err: (line) => void printed.push(line), stderr, interactive: false }, () => false)
    const events: GenerateEvent[] = []
    const entries = await entriesOf(dir, collection(['one']))
    const { cache, run } = build(dir, atlas(server), { onEvent: (e) => (events.push(e), reporter.onEvent(e)) })
    await run(entries)
    expect(server.submits).toHaveLength(1)
    const id = cache.lookup(entries[0]!.key)!.record.predictionId!
    expect(id).toMatch(/^pred_\d+$/)
    expect(printed).toContainEqual(expect.stringContaining(`prediction \`${id}\` was submitted but cannot be journaled (ENOTDIR)`))
  })
})

describe('sharp failing to load', () => {
  it('is not the provider\'s fault: three runs pay once, the journal is kept, and the message names sharp and the fix', async () => {
    const dir = tempDir()
    // fresh modules (another test may have loaded sharp already), whose import of sharp fails as a missing native part does
    vi.resetModules()
    vi.doMock('sharp', () => {
      throw new Error('Could not load the "sharp" module using the linux-x64 runtime')
    })
    let paid: string | undefined
    try {
      const core = { ...(await import('../src/core/scheduler')), ...(await import('../src/core/cache')) }
      const runs = [await generateOnce(dir, core), await generateOnce(dir, core), await generateOnce(dir, core)]
      expect(server.submits).toHaveLength(1)
      paid = runs[0]!.pending?.state.id
      expect(paid).toMatch(/^pred_\d+$/)
      for (const { failure, pending, cached } of runs) {
        expect(failure!.message).toContain('sharp, the image library imagegen uses, failed to load')
        expect(failure!.message).toContain('`npm install --include=optional sharp`')
        expect(failure!.message).not.toContain('not a PNG')
        expect([pending?.state.id, cached]).toEqual([paid, undefined])
      }
    } finally {
      vi.doUnmock('sharp')
    }
    // sharp back: the same prediction is downloaded again and cached, still without a new submit
    const fixed = await generateOnce(dir)
    expect([fixed.failure, server.submits.length, fixed.cached?.record.predictionId]).toEqual([undefined, 1, paid])
  })
})
