import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { ImageCache } from '../src/core/cache'
import { Deriver } from '../src/core/derive'
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
})
