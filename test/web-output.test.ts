import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { copyProject, viteBuild, viteProject } from './helpers/vite-project'

/** sharp as the plugin loads it, counting the images it is asked to open. */
const sharpCalls = vi.hoisted(() => ({ count: 0 }))
vi.mock('sharp', async (importOriginal) => {
  const real = ((await importOriginal()) as { default: typeof sharp }).default
  return { default: Object.assign((...args: Parameters<typeof sharp>) => (sharpCalls.count++, real(...args)), real) }
})

const MAIN = "import shots from './shots.images.yaml'\nglobalThis.__imagegen = { shots }\n"
const SHOTS = `defaults:
  prompt: A red kite over green hills
  width: 256
  height: 128
images:
  webp: {}
  avif: { format: avif, quality: 50 }
  png: { format: png }
  jpeg: { format: jpeg, quality: 70 }
  original: { format: original }
  responsive: { widths: [64, 128, 128, 256], placeholder: blur }
`
const MAGIC: Record<string, (b: Buffer) => boolean> = {
  webp: (b) => b.subarray(0, 4).toString() === 'RIFF' && b.subarray(8, 12).toString() === 'WEBP',
  avif: (b) => b.subarray(4, 12).toString() === 'ftypavif',
  png: (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  jpeg: (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
}

const fileOf = (outDir: string, src: string) => join(outDir, src.slice('/site/'.length))

describe('web-ready output', () => {
  let root: string
  let first: Awaited<ReturnType<typeof viteBuild>>
  beforeAll(async () => {
    root = viteProject({ 'src/main.js': MAIN, 'src/shots.images.yaml': SHOTS })
    first = await viteBuild(root, { provider: 'placeholder' })
  })

  it.each([
    ['webp', 'webp'],
    ['avif', 'avif'],
    ['png', 'png'],
    ['jpeg', 'jpeg'],
    ['original', 'png'],
  ])('%s: emits a %s file of the asked size', async (name, format) => {
    const image = first.values.shots[name]
    expect(image).toMatchObject({ format, width: 256, height: 128 })
    expect(image.src).toMatch(new RegExp(`\\.${format === 'jpeg' ? 'jpg' : format}$`))
    const bytes = readFileSync(fileOf(first.outDir, image.src))
    expect(MAGIC[format]!(bytes)).toBe(true)
    const meta = await sharp(bytes).metadata()
    expect([meta.width, meta.height]).toEqual([256, 128])
  })

  it('`original` emits the cached file itself', () => {
    const image = first.values.shots.original
    expect(readFileSync(fileOf(first.outDir, image.src)).equals(readFileSync(join(root, '.imagegen/images', `${image.key}.png`)))).toBe(true)
  })

  it('builds a srcset of the extra widths, never upscaled, ending with the full-size file', async () => {
    const image = first.values.shots.responsive
    const candidates = (image.srcset as string).split(', ').map((c) => c.split(' '))
    expect(candidates.map(([, w]) => w)).toEqual(['64w', '128w', '256w'])
    expect(candidates.at(-1)![0]).toBe(image.src)
    for (const [url, w] of candidates) {
      const meta = await sharp(readFileSync(fileOf(first.outDir, url!))).metadata()
      expect([meta.format, `${meta.width}w`, meta.height]).toEqual(['webp', w, (parseInt(w!) * 128) / 256])
    }
    expect(first.values.shots.webp.srcset).toBeUndefined()
  })

  it('gives a blur placeholder under 1 KB as a data URL', async () => {
    const { placeholder } = first.values.shots.responsive
    expect(placeholder).toMatch(/^data:image\/webp;base64,/)
    expect(placeholder.length).toBeLessThan(1024)
    const meta = await sharp(Buffer.from(placeholder.split(',')[1], 'base64')).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 16, 8])
    expect(first.values.shots.webp.placeholder).toBeUndefined()
  })

  it('rebuilds byte for byte, from a cold derived cache as from a warm one', async () => {
    const warm = await viteBuild(root, { provider: 'placeholder' })
    const cold = copyProject(root)
    rmSync(join(cold, 'node_modules'), { recursive: true, force: true })
    const fromCold = await viteBuild(cold, { provider: 'placeholder', mode: 'offline' })
    for (const build of [warm, fromCold]) {
      expect(build.files).toEqual(first.files)
      for (const file of first.files) expect(readFileSync(join(build.outDir, file)).equals(readFileSync(join(first.outDir, file))), file).toBe(true)
    }
  })

  it('decodes nothing on the warm path', async () => {
    // sharp counts its calls (see the mock above): a warm build that decoded or encoded anything would call it
    const copy = copyProject(root)
    writeFileSync(join(copy, 'src/shots.images.yaml'), SHOTS.replace('  original: { format: original }\n', ''))
    sharpCalls.count = 0
    const warm = await viteBuild(copy, { provider: 'placeholder', mode: 'offline' })
    expect(sharpCalls.count).toBe(0)
    for (const name of ['webp', 'avif', 'png', 'jpeg', 'responsive']) {
      const file = fileOf(warm.outDir, warm.values.shots[name].src)
      expect(readFileSync(file).equals(readFileSync(fileOf(first.outDir, first.values.shots[name].src)))).toBe(true)
    }
  })
})

describe('changing only a transform', () => {
  const API_KEY = 'sk-imagegen-web-77aa'
  let server: AtlasServer
  beforeAll(async () => {
    server = await startAtlasServer({ apiKey: API_KEY })
  })
  afterAll(() => server.close())

  it('re-encodes from the cache and never calls the provider', async () => {
    const options = { apiKey: API_KEY, baseURL: server.url, pollIntervalMs: 5 }
    const root = viteProject()
    await viteBuild(root, options)
    server.reset()
    const hero = join(root, 'src/hero.images.yaml')
    writeFileSync(hero, `${readFileSync(hero, 'utf8')}format: avif\nquality: 40\nwidths: [48]\nplaceholder: blur\n`)
    const rebuilt = await viteBuild(root, options)
    expect(server.requests).toBe(0)
    expect(rebuilt.values.hero).toMatchObject({ format: 'avif', width: 96, height: 64 })
    expect(rebuilt.values.hero.srcset).toMatch(/ 48w, .* 96w$/)
    expect(rebuilt.logs.join('\n')).toMatch(/imagegen: 4 images — 4 cached, 0 generated/)
  })
})
