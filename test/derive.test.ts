import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { ImageCache } from '../src/core/cache'
import { Deriver } from '../src/core/derive'
import { keyEntries } from '../src/core/entries'
import { keySpec } from '../src/core/key'
import { parseManifest } from '../src/core/manifest'
import { tempDir } from './helpers/temp'

/** A cached JPEG original, as a provider that delivers JPEG would leave it. */
async function jpegOriginal(dir: string) {
  const { key, pixels } = keySpec(parseManifest('prompt: noise\nwidth: 128\nheight: 64\n', 'a.images.yaml').entries[0]!.spec, 'test')
  const cache = new ImageCache(join(dir, '.imagegen'))
  const temp = await cache.tempFile(key)
  const noise = Buffer.from(Array.from({ length: 128 * 64 * 3 }, (_, i) => (i * 7919) % 251))
  writeFileSync(temp, await sharp(noise, { raw: { width: 128, height: 64, channels: 3 } }).jpeg({ quality: 95 }).toBuffer())
  return cache.commit(temp, { format: 'jpeg', width: 128, height: 64 }, { key, spec: pixels, provider: 'test', model: pixels.model, completedAt: 'now' })
}

describe('derived files', () => {
  it('with `format: original`, re-encode the widths of a lossy original at the asked quality', async () => {
    const dir = tempDir()
    const original = await jpegOriginal(dir)
    const deriver = new Deriver(join(dir, 'derived'))
    const low = await deriver.derive(original, { format: 'original', quality: 30, widths: [64], placeholder: 'none' })
    const high = await deriver.derive(original, { format: 'original', quality: 95, widths: [64], placeholder: 'none' })
    expect(low.main.path).toBe(original.path)
    expect(high.main.path).toBe(original.path)
    expect(low.widths[0]!.path).not.toBe(high.widths[0]!.path)
    expect(readFileSync(low.widths[0]!.path).length).toBeLessThan(readFileSync(high.widths[0]!.path).length)
  })

  it('a cached original that does not decode (half a PNG, committed by an older version) fails located at its entry, with the fix', async () => {
    const dir = tempDir()
    const yaml = 'images:\n  hero:\n    prompt: noise\n    width: 128\n    height: 64\n'
    const manifest = join(dir, 'site.images.yaml')
    writeFileSync(manifest, yaml)
    const [entry] = await keyEntries(parseManifest(yaml, 'site.images.yaml'), { manifestPath: manifest, root: dir, provider: 'test' })
    const cache = new ImageCache(join(dir, '.imagegen'))
    const temp = await cache.tempFile(entry!.key)
    const png = await sharp(Buffer.from(Array.from({ length: 128 * 64 * 3 }, (_, i) => (i * 7919) % 251)), { raw: { width: 128, height: 64, channels: 3 } }).png().toBuffer()
    writeFileSync(temp, png.subarray(0, png.length >> 1))
    const { key, pixels } = entry!
    const original = await cache.commit(temp, { format: 'png', width: 128, height: 64 }, { key, spec: pixels, provider: 'test', model: pixels.model, completedAt: 'now' })
    const error = await new Deriver(join(dir, 'derived')).derive(original, entry!.spec, entry).then(() => undefined, (e: Error) => e)
    expect(error?.message).toMatch(/^site\.images\.yaml:2:3 `hero`: the cached image .+\.png cannot be decoded: sharp says: .+\. Restore the file from git \(`git checkout -- .+\.png`\), or run `imagegen generate --force site\.images\.yaml#hero` to pay for it again\.$/)
    expect(error).toMatchObject({ loc: { file: 'site.images.yaml', line: 2, column: 3 } })
  })
})
