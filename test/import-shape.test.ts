/**
 * An import drops into `next/image` (`StaticImageData`) and Astro's `<Image>`: the blur fields
 * they read, and image imports that a framework turns into objects (Next's static images).
 */
import { basename } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import imagegen from '../src/vite'
import { viteBuild, viteProject } from './helpers/vite-project'

describe('the import of an image', () => {
  it('carries `blurDataURL`, `blurWidth` and `blurHeight` with a blur placeholder', async () => {
    const root = viteProject({
      'src/main.js': "import shots from './shots.images.yaml'\nglobalThis.__imagegen = { shots }\n",
      'src/shots.images.yaml':
        'defaults: { prompt: A red kite over green hills }\nimages:\n  wide: { width: 256, height: 128, placeholder: blur }\n  odd: { width: 96, height: 64, placeholder: blur }\n  plain: { width: 64, height: 64 }\n',
    })
    const { wide, odd, plain } = (await viteBuild(root, { provider: 'placeholder' })).values.shots
    expect(wide).toMatchObject({ width: 256, height: 128, blurWidth: 16, blurHeight: 8 })
    expect(wide.blurDataURL).toBe(wide.placeholder)
    const meta = await sharp(Buffer.from(wide.blurDataURL.split(',')[1], 'base64')).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 16, 8])
    // 96 × 64 → 16 × 10.67, rounded as the placeholder itself is
    expect(odd).toMatchObject({ blurWidth: 16, blurHeight: 11 })
    expect(await sharp(Buffer.from(odd.blurDataURL.split(',')[1], 'base64')).metadata()).toMatchObject({ width: 16, height: 11 })
    for (const field of ['placeholder', 'blurDataURL', 'blurWidth', 'blurHeight']) expect(plain).not.toHaveProperty(field)
  })

  it('takes the URL from `src` when the bundler imports an image as an object (as Next does)', async () => {
    const root = viteProject()
    // Like next-image-loader: an image import gives `{ src, width, height, blurDataURL }`.
    const staticImages = {
      name: 'static-image-objects',
      enforce: 'pre' as const,
      load: (id: string) =>
        /\.webp$/.test(id) ? `export default ${JSON.stringify({ src: `/_next/static/media/${basename(id)}`, width: 1, height: 1, blurDataURL: 'data:,' })}` : undefined,
    }
    const { values } = await viteBuild(root, {}, { plugins: [imagegen({ root, provider: 'placeholder' }), staticImages] })
    expect(values.hero.src).toMatch(/^\/_next\/static\/media\/[0-9a-f]{32}-96\.webp$/)
    expect(values.banner.src).toMatch(/^\/_next\/static\/media\/[0-9a-f]{32}-128\.webp$/)
    expect(values.hero).toMatchObject({ width: 96, height: 64 })
  })
})
