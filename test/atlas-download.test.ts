/** Outputs: every form, and storage that sends too much, too little, the wrong thing, or nothing. */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { type OutputForm } from './atlas-server'
import { atlas, build, collection, entriesOf, failure, job, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()
const dir = tempDir('imagegen-download-')


const HTML_PAGE = '<!DOCTYPE html><html><head><title>Access denied</title></head><body>Log in to continue</body></html>'

/** The images folder of a project's cache: committed images and records only, no leftovers. */
const imagesIn = (project: string) => {
  const folder = join(project, '.imagegen', 'images')
  return existsSync(folder) ? readdirSync(folder) : []
}

describe('atlas outputs in every form', () => {
  it.each<[OutputForm, number]>([
    ['url', 1],
    ['object', 1],
    ['output', 1],
    ['data-url', 0],
    ['base64', 0],
  ])('%s', async (outputForm, downloads) => {
    server.options = { outputForm }
    const j = job(dir)
    const result = await atlas(server).generate(j)
    expect(result.contentType).toBe('image/png')
    const meta = await sharp(j.destination).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 48])
    expect(server.downloads).toBe(downloads)
  })
})

describe('atlas downloads', () => {
  it('a body larger than the cap is cut off as it streams, and nothing is kept', async () => {
    server.options.download = () => ({ streamBytes: 64 * 1024 * 1024 })
    const j = job(dir)
    const error = await failure(atlas(server, { maxOutputBytes: 256 * 1024 }).generate(j))
    expect(error.message).toMatch(/^the output of prediction `pred_\d+` is larger than 256 KB; refusing to save it\./)
    expect(error.retryable).toBe(false)
    expect(server.downloadRequests).toBe(1)
    expect(server.downloadsCutShort).toBe(1)
    expect(existsSync(j.destination)).toBe(false)
  })

  it('a declared length above the cap is refused before the body is read', async () => {
    server.options.download = () => ({ body: Buffer.alloc(300 * 1024, 1) })
    const error = await failure(atlas(server, { maxOutputBytes: 256 * 1024 }).generate(job(dir)))
    expect(error.message).toContain('is larger than')
    expect(server.downloadRequests).toBe(1)
  })

  it('the 50 MB default cap is in place', async () => {
    server.options.download = () => ({ streamBytes: 64 * 1024 * 1024 })
    const error = await failure(atlas(server).generate(job(dir)))
    expect(error.message).toContain('is larger than 50 MB')
    expect(server.downloadsCutShort).toBe(1)
  })

  it('a truncated body is downloaded again, whole', async () => {
    server.options.download = (_, attempt) => (attempt <= 2 ? 'truncated' : 'continue')
    const j = job(dir)
    await atlas(server).generate(j)
    expect(server.downloadRequests).toBe(3)
    const meta = await sharp(j.destination).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 48])
    await sharp(j.destination).raw().toBuffer() // decodes: every byte arrived
  })

  it('a download that never answers hits the per-request timeout and is sent again', async () => {
    let held = 0
    server.options.intercept = req => (req.path.startsWith('/outputs/') && held++ === 0 ? 'hang' : 'continue')
    const j = job(dir)
    await atlas(server, { requestTimeoutMs: 100 }).generate(j)
    expect(held).toBe(2)
    expect(server.downloads).toBe(1)
    expect((await sharp(j.destination).metadata()).format).toBe('png')
  })

  it('an HTML page labelled image/png is refused after retries; nothing is cached and the journal is cleared', async () => {
    const project = tempDir()
    server.options.download = () => ({ body: HTML_PAGE, contentType: 'image/png' })
    const entries = await entriesOf(project, collection(['gated']))
    const { cache, run } = build(project, atlas(server, { maxRetries: 2 }))
    const error = (await run(entries).catch((e: unknown) => e)) as Error
    expect(error.message).toMatch(/is not a PNG, JPEG, WebP or AVIF image \(it starts with "<!DOCTYPE html><html><head><title>Access", though it was labelled `image\/png`\)/)
    expect(error.message).toContain('Nothing was cached; run again to generate it afresh.')
    expect(server.downloadRequests).toBe(3)
    expect(await cache.lookup(entries[0]!.key)).toBeUndefined()
    expect(imagesIn(project)).toEqual([])
    expect(await cache.readPending(entries[0]!.key)).toBeUndefined()
  })

  it('a PNG labelled text/html is an image: the bytes decide', async () => {
    const project = tempDir()
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).png().toBuffer()
    server.options.download = () => ({ body: png, contentType: 'text/html; charset=utf-8' })
    const entries = await entriesOf(project, collection(['mislabelled']))
    const { cache, run } = build(project, atlas(server))
    await run(entries)
    const cached = await cache.lookup(entries[0]!.key)
    expect(cached?.record).toMatchObject({ contentType: 'image/png', format: 'png' })
  })

  it('inline base64 that is not an image is refused', async () => {
    server.options.intercept = req =>
      req.path.includes('/prediction/')
        ? { status: 200, body: { id: 'pred_x', status: 'completed', outputs: [Buffer.from(HTML_PAGE).toString('base64')] } }
        : 'continue'
    const j = job(dir)
    const error = await failure(atlas(server).generate(j))
    expect(error.message).toContain('is not a PNG, JPEG, WebP or AVIF image (it starts with "<!DOCTYPE html>')
    expect(existsSync(j.destination)).toBe(false)
  })

  it('a 404 on the output of a prediction just made: not paid again now, kept for a rerun', async () => {
    server.options.download = () => (server.submits.length === 1 ? 'expired' : 'continue')
    const ids: string[] = []
    const error = await failure(atlas(server).generate(job(dir, {}, { onSubmitted: ({ id }) => void ids.push(id) })))
    expect(server.submits).toHaveLength(1)
    expect(error.message).toMatch(/answered 404 only \d+ s after its submit \(outputs last 14 days\)\. It is paid for and journaled: run again to download it/)
    expect(error).toMatchObject({ predictionId: ids[0], retryable: true })
  })

  it('a 404 on the output of a resumed prediction: it expired, so it is generated again, once', async () => {
    const first = await atlas(server).generate(job(dir))
    server.reset()
    server.options.download = () => (server.submits.length === 0 ? 'expired' : 'continue')
    const ids: string[] = []
    const j = job(dir, {}, { resume: { id: first.predictionId! }, onSubmitted: ({ id }) => void ids.push(id) })
    const result = await atlas(server).generate(j)
    expect(server.submits).toHaveLength(1)
    expect(result.predictionId).toBe(ids[0])
    expect((await sharp(j.destination).metadata()).format).toBe('png')
  })

  it('an output that is gone again after generating afresh: reported and journaled, not paid a third time', async () => {
    const first = await atlas(server).generate(job(dir))
    server.reset()
    server.options.download = () => 'expired'
    const ids: string[] = []
    const error = await failure(atlas(server).generate(job(dir, {}, { resume: { id: first.predictionId! }, onSubmitted: ({ id }) => void ids.push(id) })))
    expect(server.submits).toHaveLength(1)
    expect(error.message).toMatch(/answered 404 only \d+ s after its submit/)
    expect(error).toMatchObject({ predictionId: ids[0], status: 404, retryable: true })
    // the next run resumes that young prediction: it downloads again, it does not submit
    server.reset()
    await failure(atlas(server).generate(job(dir, {}, { resume: { id: ids[0]!, submittedAt: new Date().toISOString() } })))
    expect(server.submits).toHaveLength(0)
  })

  it('5xx from the storage is retried; the key is never sent to it', async () => {
    const authorizations: Array<string | undefined> = []
    let failures = 0
    server.options.intercept = req => {
      if (!req.path.startsWith('/outputs/')) return 'continue'
      authorizations.push(req.headers.authorization)
      return failures++ < 2 ? { status: 503, raw: '<html>busy</html>' } : 'continue'
    }
    await atlas(server).generate(job(dir))
    expect(server.downloads).toBe(1)
    expect(authorizations).toEqual([undefined, undefined, undefined])
  })
})
