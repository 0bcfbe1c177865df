import { spawn } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it, vi } from 'vitest'
import { DamagedEntryError, ImageCache } from '../src/core/cache'
import { keySpec } from '../src/core/key'
import { parseManifest } from '../src/core/manifest'
import { bundleScript } from './helpers/child-script'
import { listFiles, tempDir } from './helpers/temp'

const pixels = keySpec(parseManifest('prompt: a cat\nwidth: 64\nheight: 64\n', 'a.images.yaml').entries[0]!.spec, 'placeholder')
const png = () => sharp({ create: { width: 64, height: 64, channels: 3, background: '#123456' } }).png().toBuffer()

async function commitOne(cache: ImageCache) {
  const temp = await cache.tempFile(pixels.key)
  writeFileSync(temp, await png())
  return cache.commit(temp, { format: 'png', width: 64, height: 64 }, {
    key: pixels.key,
    spec: pixels.pixels,
    provider: 'placeholder',
    model: pixels.pixels.model,
    predictionId: 'pred_1',
    completedAt: '2026-01-01T00:00:00.000Z',
  })
}

describe('the image cache', () => {
  it('stores the image and a record beside it, and finds them again', async () => {
    const dir = tempDir()
    const cache = new ImageCache(join(dir, '.imagegen'))
    expect(await cache.lookup(pixels.key)).toBeUndefined()
    const stored = await commitOne(cache)
    expect(listFiles(join(dir, '.imagegen'))).toEqual(['.gitignore', `images/${pixels.key}.json`, `images/${pixels.key}.png`])
    const found = await new ImageCache(join(dir, '.imagegen')).lookup(pixels.key)
    expect(found).toEqual(stored)
    expect(found!.record).toMatchObject({
      key: pixels.key,
      file: `${pixels.key}.png`,
      contentType: 'image/png',
      width: 64,
      height: 64,
      predictionId: 'pred_1',
      provider: 'placeholder',
      spec: pixels.pixels,
    })
    expect(found!.record.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(await cache.keys()).toEqual([pixels.key])
  })

  it('keeps transient folders out of git', async () => {
    const dir = tempDir()
    const cache = new ImageCache(dir)
    await cache.tempFile(pixels.key)
    const ignore = readFileSync(join(dir, '.gitignore'), 'utf8')
    expect(ignore).toMatch(/^\*\.tmp$/m)
    expect(ignore).toMatch(/^pending\/$/m)
    expect(ignore).toMatch(/^locks\/$/m)
  })

  it('treats an image whose size differs from its record as damaged, never as missing (which would pay for it again)', async () => {
    const dir = tempDir()
    const cache = new ImageCache(dir)
    const stored = await commitOne(cache)
    writeFileSync(stored.path, 'truncated')
    expect(() => cache.lookup(pixels.key)).toThrow(new DamagedEntryError(pixels.key, stored.path, `the image has 9 bytes, its record says ${stored.record.size} (truncated, or rewritten by a line-ending conversion)`))
  })

  it('remembers verified images in its memo, and hashes again a file that changed since', async () => {
    const dir = tempDir()
    const memo = join(dir, 'derived/verified.json')
    const stored = await commitOne(new ImageCache(dir, memo))
    expect(existsSync(memo)).toBe(false) // a run's commits do not rewrite it one by one: its next lookup does, once
    expect(new ImageCache(dir, memo).lookup(pixels.key)).toEqual(stored)
    // by key, with the record: a lookup of an unchanged entry reads neither file
    await vi.waitFor(() => expect(JSON.parse(readFileSync(memo, 'utf8'))).toEqual({ [pixels.key]: { fingerprint: expect.any(String), record: stored.record } }))
    expect(new ImageCache(dir, memo).lookup(pixels.key)).toEqual(stored)
    // a record rewritten since is read again (here it claims another hash)
    const recordPath = join(dir, 'images', `${pixels.key}.json`)
    const record = readFileSync(recordPath, 'utf8')
    writeFileSync(recordPath, record.replace(stored.record.sha256, 'a'.repeat(64)))
    expect(() => new ImageCache(dir, memo).lookup(pixels.key)).toThrow(/SHA-256 [0-9a-f]{12}… differs from the recorded aaaaaaaaaaaa…/)
    writeFileSync(recordPath, record)
    expect(new ImageCache(dir, memo).lookup(pixels.key)).toEqual(stored)
    const bytes = readFileSync(stored.path)
    bytes[bytes.length >> 1]! ^= 0xff
    writeFileSync(stored.path, bytes)
    expect(() => new ImageCache(dir, memo).lookup(pixels.key)).toThrow(/SHA-256 [0-9a-f]{12}… differs from the recorded/)
  })

  it('reads a memo of any size once: 10,000 images make one of 6 MB, and what it lists as verified is neither read nor hashed again', async () => {
    const dir = tempDir()
    const memo = join(dir, 'derived/verified.json')
    const stored = await commitOne(new ImageCache(dir, memo))
    // Change the image's bytes, then write a memo that says this very record and image (their inodes, sizes and times)
    // were verified: only a lookup that read the memo takes the entry without hashing it (hashing finds it damaged).
    const bytes = readFileSync(stored.path)
    bytes[bytes.length >> 1]! ^= 0xff
    writeFileSync(stored.path, bytes)
    const fingerprint = (path: string) => ((s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`)(lstatSync(path))
    const verified = { fingerprint: `${fingerprint(join(dir, 'images', `${pixels.key}.json`))} ${fingerprint(stored.path)}`, record: stored.record }
    const others = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [i.toString(16).padStart(64, '0'), { ...verified, fingerprint: `1:${i}:69:1.5:1.5` }]))
    mkdirSync(join(dir, 'derived'))
    writeFileSync(memo, JSON.stringify({ ...others, [pixels.key]: verified }))
    expect(statSync(memo).size).toBeGreaterThan(1024 * 1024)
    expect(new ImageCache(dir, memo).lookup(pixels.key)).toEqual(stored)
    expect(() => new ImageCache(dir, memo).lookup(pixels.key, { rehash: true })).toThrow(/SHA-256 [0-9a-f]{12}… differs from the recorded/)
  })

  it('journals pending predictions', async () => {
    const cache = new ImageCache(tempDir())
    await cache.writePending({ key: pixels.key, provider: 'atlas', submittedAt: 'now', state: { id: 'pred_9', anything: [1] } })
    expect(await cache.readPending(pixels.key)).toEqual({ key: pixels.key, provider: 'atlas', submittedAt: 'now', state: { id: 'pred_9', anything: [1] } })
    // a journal of another key, or without an id, is not one to resume
    await cache.writePending({ key: 'f'.repeat(64), provider: 'atlas', submittedAt: 'now', state: { id: 'pred_8' } })
    await cache.writePending({ key: pixels.key, provider: 'atlas', submittedAt: 'now', state: {} as never })
    expect(await cache.readPending(pixels.key)).toBeUndefined()
    await cache.clearPending(pixels.key)
    expect(await cache.readPending(pixels.key)).toBeUndefined()
  })

  it('leaves no entry when the writing process is killed half way', async () => {
    const dir = tempDir()
    // A child process writes the image through the real cache, then blocks before committing.
    const script = `
      import { DamagedEntryError, ImageCache } from '../src/core/cache'
      import { open } from 'node:fs/promises'
      const cache = new ImageCache(${JSON.stringify(dir)})
      const temp = await cache.tempFile(${JSON.stringify(pixels.key)})
      const handle = await open(temp, 'w')
      await handle.write(Buffer.alloc(4096, 1))
      console.log('half')
      setInterval(() => handle.write(Buffer.alloc(4096, 1)), 5)
    `
    const child = spawn(process.execPath, [await bundleScript(script, 'cache-half-written')], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))

    const images = readdirSync(join(dir, 'images'))
    expect(images.length).toBe(1)
    expect(images[0]).toMatch(/\.tmp$/)
    expect(await new ImageCache(dir).lookup(pixels.key)).toBeUndefined()
    expect(existsSync(join(dir, 'images', `${pixels.key}.png`))).toBe(false)
  })

  it('a record is written whole or not at all', async () => {
    const dir = tempDir()
    const cache = new ImageCache(dir)
    const stored = await commitOne(cache)
    const before = readFileSync(cache.recordPath(pixels.key), 'utf8')
    // Kill a process in the middle of rewriting the record through writeFileAtomic.
    const script = `
      import { writeFileAtomic } from '../src/core/atomic'
      console.log('go')
      await writeFileAtomic(${JSON.stringify(cache.recordPath(pixels.key))}, Buffer.alloc(256 * 1024 * 1024, 32))
    `
    const child = spawn(process.execPath, [await bundleScript(script, 'cache-record-rewrite')], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    const after = readFileSync(cache.recordPath(pixels.key), 'utf8')
    // Either the old record survived, or the new one landed complete; never a mix.
    expect(after === before || after.length === 256 * 1024 * 1024).toBe(true)
    if (after === before) expect((await cache.lookup(pixels.key))?.record).toEqual(stored.record)
  })
})
