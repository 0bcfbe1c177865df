/**
 * Reference images (`image:`): uploaded with uploadMedia once per content hash, the URL
 * remembered in the cache and sent as the model's `image`; paths that leave the project and
 * files that are not images are refused before anything is sent.
 */
import { createHash } from 'node:crypto'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { ImageCache } from '../src/core/cache'
import { ManifestError } from '../src/core/errors'
import { atlas, build, entriesOf, failure, job, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()


const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

/** A project with a reference image at `refs/sketch.png` (and the same bytes at `refs/copy.png`). */
async function project(): Promise<{ dir: string; bytes: Buffer }> {
  const dir = tempDir()
  mkdirSync(join(dir, 'refs'))
  const bytes = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#aa3355' } }).png().toBuffer()
  writeFileSync(join(dir, 'refs', 'sketch.png'), bytes)
  copyFileSync(join(dir, 'refs', 'sketch.png'), join(dir, 'refs', 'copy.png'))
  return { dir, bytes }
}

const manifest = (entries: Record<string, { prompt: string; image: string; input?: string }>) =>
  `defaults:\n  width: 64\n  height: 64\nimages:\n${Object.entries(entries)
    .map(([name, e]) => `  ${name}:\n    prompt: ${e.prompt}\n    image: ${e.image}\n${e.input ? `    input: ${e.input}\n` : ''}`)
    .join('')}`

describe('atlas reference images', () => {
  it('uploads a reference once per content hash and sends its URL as `image`', async () => {
    const { dir, bytes } = await project()
    const entries = await entriesOf(
      dir,
      manifest({
        a: { prompt: 'A red fox in the style of the sketch', image: 'refs/sketch.png' },
        b: { prompt: 'A blue whale in the style of the sketch', image: './refs/sketch.png' },
        c: { prompt: 'A green frog in the style of the sketch', image: 'refs/copy.png' },
      }),
    )
    const { cache, run } = build(dir, atlas(server))
    await run(entries)

    expect(server.uploads).toHaveLength(1)
    const [upload] = server.uploads
    expect(upload).toMatchObject({ contentType: 'image/png', size: bytes.length, sha256: sha256(bytes) })
    // named after whichever of the two files with these bytes was read first: the jobs run at once
    expect(['sketch.png', 'copy.png']).toContain(upload!.fileName)
    expect(server.submits).toHaveLength(3)
    for (const body of server.submits) expect(body.image).toBe(upload!.url)
    // the content hash, not the path or URL, is in the key
    expect(new Set(entries.map(e => e.pixels.image))).toEqual(new Set([sha256(bytes)]))
    for (const entry of entries) expect(await cache.lookup(entry.key)).toBeDefined()
    // remembered in the cache, out of git
    const memo = JSON.parse(readFileSync(join(dir, '.imagegen', 'uploads', 'atlas', `${sha256(bytes)}.json`), 'utf8'))
    expect(memo).toMatchObject({ url: upload!.url, service: server.url })
    expect(readFileSync(join(dir, '.imagegen', '.gitignore'), 'utf8')).toMatch(/^uploads\/$/m)
  })

  it('a later run with a new provider instance reuses the remembered URL', async () => {
    const { dir } = await project()
    await build(dir, atlas(server)).run(await entriesOf(dir, manifest({ a: { prompt: 'A cat', image: 'refs/sketch.png' } })))
    expect(server.uploads).toHaveLength(1)
    const url = server.uploads[0]!.url
    server.reset()

    await build(dir, atlas(server)).run(await entriesOf(dir, manifest({ a: { prompt: 'A dog', image: 'refs/sketch.png' } })))
    expect(server.uploads).toHaveLength(0)
    expect(server.submits[0]!.image).toBe(url)
  })

  it('uploads again when the remembered URL is old', async () => {
    const { dir, bytes } = await project()
    await new ImageCache(join(dir, '.imagegen'))
      .uploads('atlas')
      .set(sha256(bytes), { url: `${server.url}/uploads/stale/sketch.png`, uploadedAt: new Date(Date.now() - 3 * 24 * 3600_000).toISOString(), service: server.url })
    await build(dir, atlas(server)).run(await entriesOf(dir, manifest({ a: { prompt: 'A cow', image: 'refs/sketch.png' } })))
    expect(server.uploads).toHaveLength(1)
    expect(server.submits[0]!.image).toBe(server.uploads[0]!.url)
  })

  it('reads a top-level `url` answer, and retries an upload the service was too busy for', async () => {
    const { dir } = await project()
    server.options.uploadShape = 'url'
    let busy = 0
    server.options.intercept = req => (req.path.endsWith('/uploadMedia') && busy++ < 2 ? { status: 503, raw: '<html>busy</html>' } : 'continue')
    await build(dir, atlas(server)).run(await entriesOf(dir, manifest({ a: { prompt: 'An owl', image: 'refs/sketch.png' } })))
    expect(busy).toBe(3)
    expect(server.uploads).toHaveLength(1)
    expect(server.submits[0]!.image).toBe(server.uploads[0]!.url)
  })

  it('the manifest’s raw `input` may set `image` itself', async () => {
    const { dir } = await project()
    const entries = await entriesOf(
      dir,
      manifest({ a: { prompt: 'A heron', image: 'refs/sketch.png', input: '{ image: "https://example.test/own.png" }' } }),
    )
    await build(dir, atlas(server)).run(entries)
    expect(server.submits[0]!.image).toBe('https://example.test/own.png')
  })

  it('the upload carries the key; its failure says what to do without printing it', async () => {
    const { dir } = await project()
    const key = 'sk-upload-secret-0xC0FFEE'
    server.options.apiKey = key
    server.options.intercept = req => (req.path.endsWith('/uploadMedia') ? { status: 403, body: { message: `token ${String(req.headers.authorization)} may not upload` } } : 'continue')
    const error = (await build(dir, atlas(server, { apiKey: key })).run(await entriesOf(dir, manifest({ a: { prompt: 'A bee', image: 'refs/sketch.png' } }))).catch((e: unknown) => e)) as Error
    expect(error.message).toMatch(/Atlas Cloud refused the request while uploading the reference image sketch\.png \(HTTP 403: token Bearer \*\*\* may not upload\)/)
    expect(error.message).not.toContain(key)
    expect(server.submitAttempts).toBe(0)
  })
})

describe('reference images that are refused before anything is sent', () => {
  async function refused(dir: string, image: string): Promise<string> {
    const error = await entriesOf(dir, manifest({ a: { prompt: 'A thing', image } }), 'sub/art.images.yaml').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ManifestError)
    expect(server.requests).toBe(0)
    return (error as Error).message
  }

  it('a path that climbs out of the project with `..`', async () => {
    const outside = tempDir()
    writeFileSync(join(outside, 'secret.png'), await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer())
    const { dir } = await project()
    mkdirSync(join(dir, 'sub'))
    const climb = `../${'../'.repeat(dir.split('/').length)}${outside.slice(1)}/secret.png`
    expect(await refused(dir, climb)).toMatch(/^sub\/art\.images\.yaml:\d+:\d+: `image` must stay inside the project root/)
  })

  it('an absolute path', async () => {
    const { dir } = await project()
    mkdirSync(join(dir, 'sub'))
    expect(await refused(dir, join(dir, 'refs', 'sketch.png'))).toMatch(/`image` must be a path relative to the manifest, not an absolute path/)
  })

  it('a symlink inside the project that points outside it', async () => {
    const outside = tempDir()
    writeFileSync(join(outside, 'secret.png'), await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer())
    const { dir } = await project()
    mkdirSync(join(dir, 'sub'))
    symlinkSync(join(outside, 'secret.png'), join(dir, 'sub', 'innocent.png'))
    expect(await refused(dir, 'innocent.png')).toMatch(/`image` must stay inside the project root; "innocent\.png" leads outside it/)
  })

  it('a file that is not an image, whatever its name', async () => {
    const { dir } = await project()
    mkdirSync(join(dir, 'sub'))
    writeFileSync(join(dir, 'sub', 'notes.png'), 'API_KEY=do-not-upload-me\n')
    expect(await refused(dir, 'notes.png')).toMatch(/`image` must be a PNG, JPEG, WebP or AVIF image \("notes\.png" is not\)/)
    expect(readdirSync(dir)).not.toContain('.imagegen')
  })
})

describe('atlas reference images: the upload answer', () => {
  // a vite build earlier in the same process makes undici refuse Node's FormData: kept apart from test/trust-provider.test.ts
  it('a URL that echoes a piece of the key is not kept, and nothing is submitted', async () => {
    const KEY = 'sk-TRUST-4f1c9e7a2b5d8c3f6a0e9b1d'
    server.options = { apiKey: KEY }
    server.options.intercept = (req) =>
      req.path.endsWith('/uploadMedia') ? { status: 200, body: { code: 200, data: { download_url: `https://cdn.example/${KEY.slice(0, -1)}/sketch.png` } } } : 'continue'
    const { dir } = await project()
    const kept: unknown[] = []
    const uploads = { get: async () => undefined, set: async (_: string, record: unknown) => void kept.push(record) }
    const error = await failure(atlas(server, { apiKey: KEY }).generate(job(dir, { image: join(dir, 'refs', 'sketch.png') }, { uploads })))
    expect(error.message).toContain('with a URL that holds the API key; it is not kept')
    expect(error.message).not.toMatch(/4f1c9e7a|TRUST-4f/)
    expect(kept).toEqual([])
    expect(server.submitAttempts).toBe(0)
  })
})
