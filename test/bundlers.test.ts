import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { BUNDLERS, bundle, SCRIPT_URL } from './helpers/bundlers'
import { listFiles } from './helpers/temp'
import { viteProject } from './helpers/vite-project'

async function expectImages(result: Awaited<ReturnType<typeof bundle>>, root: string) {
  const { hero, art, banner } = result.values
  expect(hero).toMatchObject({ width: 96, height: 64, format: 'webp', alt: 'A lighthouse', prompt: 'A lighthouse at dusk', model: 'black-forest-labs/flux-schnell' })
  expect(Object.keys(art)).toEqual(['banner', 'avatar', 'hero-wide'])
  expect(banner).toEqual(art.banner)
  expect(banner).toMatchObject({ width: 128, height: 64 })
  for (const image of [hero, ...Object.values(art)] as { src: string; width: number; height: number; key: string }[]) {
    // Every URL goes through the bundler's public path and names an emitted, content-hashed file.
    expect(image.src.startsWith(result.publicPath), `${image.src} under ${result.publicPath}`).toBe(true)
    const file = decodeURIComponent(image.src.slice(result.publicPath.length))
    expect(result.files).toContain(file)
    const emitted = readFileSync(join(result.outDir, file))
    // The emitted file is a WebP derived from the cached original, byte for byte.
    const derivedDir = join(root, 'node_modules/.cache/unplugin-imagegen')
    const derived = listFiles(derivedDir).filter((f) => f.endsWith('.webp'))
    expect(derived.some((f) => readFileSync(join(derivedDir, f)).equals(emitted))).toBe(true)
    const meta = await sharp(emitted).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', image.width, image.height])
  }
  expect(result.files.filter((f) => f.endsWith('.webp'))).toHaveLength(4)
}

describe.each(BUNDLERS)('%s', (bundler) => {
  it('emits each image and exports the same module under a non-root public path', async () => {
    const root = viteProject()
    await expectImages(await bundle(bundler, root, { provider: 'placeholder' }), root)
  })
})

describe.each(['webpack', 'rspack'] as const)('%s with publicPath "auto"', (bundler) => {
  it('resolves image URLs from the script location', async () => {
    const root = viteProject()
    const result = await bundle(bundler, root, { provider: 'placeholder' }, { publicPath: 'auto' })
    expect(result.publicPath).toBe(new URL('.', SCRIPT_URL).href)
    await expectImages(result, root)
  })
})

describe.each(BUNDLERS)('%s without a key', (bundler) => {
  it('fails the build with the list of missing entries', async () => {
    const root = viteProject()
    const error = await bundle(bundler, root, { baseURL: 'http://127.0.0.1:9' }).catch((e: unknown) => e as Error)
    expect(error).toBeInstanceOf(Error)
    expect(String((error as Error).message)).toContain('4 images are not in the cache and cannot be generated: no API key is set')
    expect(String((error as Error).message)).toMatch(/src\/art\.images\.yaml:5:3 `banner`/)
  })
})

describe.each(BUNDLERS)('%s with entry names that could clash', (bundler) => {
  it('exports every identifier name and keeps the rest in the default map', async () => {
    const root = viteProject({
      'src/main.js': "import all, { images, image, __image0 } from './names.images.yaml'\nglobalThis.__imagegen = { all, named: { images, image, __image0 } }\n",
      'src/names.images.yaml': `defaults: { width: 64, height: 64 }\nimages:\n${['images', 'image', '__image0', 'default', 'class', 'two words', '__imagegen_entry0'].map((n, i) => `  "${n}": { prompt: "name ${i}" }\n`).join('')}`,
    })
    const { values } = await bundle(bundler, root, { provider: 'placeholder' })
    expect(Object.keys(values.all)).toEqual(['images', 'image', '__image0', 'default', 'class', 'two words', '__imagegen_entry0'])
    expect(values.named.images).toEqual(values.all.images)
    expect(values.named.image.prompt).toBe('name 1')
    expect(values.named.__image0.prompt).toBe('name 2')
    expect(values.all['__imagegen_entry0'].prompt).toBe('name 6')
  })
})
