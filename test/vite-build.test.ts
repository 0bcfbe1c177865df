import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { build, createLogger, type Plugin, type PluginOption } from 'vite'
import imagegen from '../src/vite'
import { Project } from '../src/core/project'
import { copyProject, viteBuild, viteProject } from './helpers/vite-project'
import { filesContaining } from './helpers/temp'

const API_KEY = 'sk-imagegen-vite-81d2aa40'
let server: AtlasServer
const online = () => ({ apiKey: API_KEY, baseURL: server.url, pollIntervalMs: 5 })

beforeAll(async () => {
  server = await startAtlasServer({ apiKey: API_KEY, latencyMs: 20 })
})
afterAll(() => server.close())
beforeEach(() => server.reset())

describe('vite build', () => {
  it('emits every image as a content-hashed asset under `base`, with the module of PRODUCT.md', async () => {
    const root = viteProject()
    const result = await viteBuild(root, online())
    expect(server.submits).toHaveLength(4)
    const { hero, art, banner } = result.values
    expect(hero).toMatchObject({ width: 96, height: 64, format: 'webp', alt: 'A lighthouse', prompt: 'A lighthouse at dusk', model: 'black-forest-labs/flux-schnell' })
    expect(hero.key).toMatch(/^[0-9a-f]{64}$/)
    expect(Number.isInteger(hero.seed)).toBe(true)
    expect(Object.keys(art)).toEqual(['banner', 'avatar', 'hero-wide'])
    expect(banner).toEqual(art.banner)
    expect(banner).toMatchObject({ width: 128, height: 64 })

    const images = [hero, ...Object.values(art)] as { src: string; width: number; height: number }[]
    for (const image of images) {
      expect(image.src).toMatch(/^\/site\/assets\/[0-9a-f]{32}-\d+-[\w-]+\.webp$/)
      const file = join(result.outDir, image.src.slice('/site/'.length))
      expect(result.js).toContain(image.src)
      const meta = await sharp(file).metadata()
      expect([meta.format, meta.width, meta.height]).toEqual(['webp', image.width, image.height])
    }
    expect(result.logs.join('\n')).toMatch(/imagegen: 4 images — 0 cached, 4 generated in \d+\.\ds/)
  })

  it('imports each image by its path relative to the manifest, which Vite resolves without trying it as a URL first', async () => {
    const root = viteProject()
    const code = new Map<string, string>()
    const capture: Plugin = { name: 'capture', enforce: 'post', transform: (js, id) => void (id.includes('.images.yaml') && code.set(id.split('?')[0]!, js)) }
    const built = await viteBuild(root, { provider: 'placeholder' }, { plugins: [imagegen({ root, provider: 'placeholder' }), capture] })
    const art = code.get(join(root, 'src/art.images.yaml'))!
    expect(art.match(/^import \w+ from "[^"]+";$/gm)).toEqual([
      expect.stringMatching(/^import __imagegen_asset0 from "\.\.\/node_modules\/\.cache\/unplugin-imagegen\/[0-9a-f]{32}-128\.webp";$/),
      expect.stringMatching(/^import __imagegen_asset1 from "\.\.\/node_modules\/\.cache\/unplugin-imagegen\/[0-9a-f]{32}-64\.webp";$/),
      expect.stringMatching(/^import __imagegen_asset2 from "\.\.\/node_modules\/\.cache\/unplugin-imagegen\/[0-9a-f]{32}-64\.webp";$/),
    ])
    expect(built.values.banner.src).toMatch(/^\/site\/assets\/[0-9a-f]{32}-128-[\w-]{8}\.webp$/)
  })

  it('prints one summary line for a build run inside another, as SvelteKit runs its client build from the server build', async () => {
    const root = viteProject()
    const logs: string[] = []
    const logger = createLogger('info')
    logger.info = (msg) => void logs.push(msg)
    const config = (outDir: string, plugins: PluginOption[]) => ({ root, configFile: false as const, customLogger: logger, plugins, build: { outDir, rollupOptions: { input: join(root, 'src/main.js') } } })
    // a second plugin instance, as the nested build loads the config again
    const nested: Plugin = { name: 'nested-build', apply: 'build', async writeBundle() { await build(config(join(root, 'dist-client'), [imagegen({ root, ...online() })])) } }
    await build(config(join(root, 'dist-server'), [imagegen({ root, ...online() }), nested]))
    expect(server.submits).toHaveLength(4)
    expect(logs.filter((line) => line.includes('imagegen:'))).toEqual([expect.stringMatching(/^imagegen: 4 images — 0 cached, 4 generated in /)])

    // apart, one after the other, each build has its line
    logs.length = 0
    await build(config(join(root, 'dist-a'), [imagegen({ root, ...online() })]))
    await build(config(join(root, 'dist-b'), [imagegen({ root, ...online() })]))
    expect(logs.filter((line) => line.includes('imagegen:'))).toHaveLength(2)
  })

  it('a second build makes no request; a prompt edit submits once; an alt edit submits nothing', async () => {
    const root = viteProject()
    await viteBuild(root, online())
    server.reset()

    const again = await viteBuild(root, online())
    expect(server.requests).toBe(0)
    expect(again.logs.join('\n')).toMatch(/imagegen: 4 images — 4 cached, 0 generated/)

    const art = join(root, 'src/art.images.yaml')
    writeFileSync(art, readFileSync(art, 'utf8').replace('A robot mascot', 'A robot mascot, waving'))
    await viteBuild(root, online())
    expect(server.submits).toHaveLength(1)
    expect(server.submits[0]).toMatchObject({ prompt: 'A robot mascot, waving' })

    server.reset()
    writeFileSync(art, readFileSync(art, 'utf8').replace('    prompt: Rolling hills\n', '    prompt: Rolling hills\n    alt: Green hills\n'))
    const altered = await viteBuild(root, online())
    expect(server.requests).toBe(0)
    expect(altered.values.art['hero-wide'].alt).toBe('Green hills')
  })

  it('builds without a key from a complete cache, byte for byte the same each time', async () => {
    const root = viteProject()
    await viteBuild(root, online())
    server.reset()
    const copy = copyProject(root)
    const first = await viteBuild(root, { baseURL: server.url })
    const second = await viteBuild(copy, { baseURL: server.url, mode: 'offline' })
    expect(server.requests).toBe(0)
    expect(second.files).toEqual(first.files)
    for (const file of first.files) {
      expect(readFileSync(join(second.outDir, file)).equals(readFileSync(join(first.outDir, file))), file).toBe(true)
    }
  })

  it('fails without a key when an entry is missing, listing every missing entry', async () => {
    const root = viteProject()
    const error = await viteBuild(root, { baseURL: server.url }).catch((e: unknown) => e as Error)
    expect(error).toBeInstanceOf(Error)
    const message = (error as Error).message
    expect(message).toContain('4 images are not in the cache and cannot be generated: no API key is set (ATLASCLOUD_API_KEY). Nothing was submitted.')
    expect(message).toContain('src/hero.images.yaml:1:1: A lighthouse at dusk')
    expect(message).toMatch(/src\/art\.images\.yaml:5:3 `banner`/)
    expect(message).toMatch(/src\/art\.images\.yaml:\d+:3 `hero-wide`/)
    expect(message).toContain('ATLASCLOUD_API_KEY')
    expect(message).toContain('imagegen generate')
    expect(server.requests).toBe(0)
  })

  it('prints no summary line for a build that fails on missing images, however many were cached (Vite still calls closeBundle)', async () => {
    const root = viteProject()
    await viteBuild(root, online())
    const art = join(root, 'src/art.images.yaml')
    writeFileSync(art, `${readFileSync(art, 'utf8')}  harbor:\n    prompt: A quiet harbor\n`)
    const logs: string[] = []
    const logger = createLogger('info')
    logger.info = (msg) => void logs.push(msg)
    logger.error = () => {}
    const error = await build({
      root,
      configFile: false,
      customLogger: logger,
      plugins: [imagegen({ root, baseURL: server.url })],
      build: { outDir: join(root, 'dist'), rollupOptions: { input: join(root, 'src/main.js') } },
    }).catch((e: unknown) => e as Error)
    expect((error as Error).message).toContain('1 image is not in the cache and cannot be generated: no API key is set')
    expect(logs.filter((line) => line.includes('imagegen:'))).toEqual([])
  })

  it('fails in offline mode even with a key, and never calls the provider', async () => {
    const root = viteProject()
    const error = await viteBuild(root, { ...online(), mode: 'offline' }).catch((e: unknown) => e as Error)
    expect((error as Error).message).toContain('offline mode is on')
    expect(server.requests).toBe(0)
  })

  it('fails before submitting anything above maxNewImages, and says how to allow it', async () => {
    const root = viteProject()
    const error = await viteBuild(root, { ...online(), maxNewImages: 3 }).catch((e: unknown) => e as Error)
    expect((error as Error).message).toContain('4 new images would be generated, more than `maxNewImages` allows (3)')
    expect((error as Error).message).toContain('raise `maxNewImages`')
    expect(server.requests).toBe(0)
  })

  it('walks the project only once an imported image is missing, and then counts manifests it does not import before the first submit', async () => {
    const extra = 'defaults:\n  width: 64\n  height: 64\nimages:\n  kite:\n    prompt: A kite\n  boat:\n    prompt: A boat\n'
    const root = viteProject({ 'src/later/extra.images.yaml': extra })
    const walks = vi.spyOn(Project.prototype, 'findManifests')
    try {
      // 4 images imported and missing, 2 more in a manifest no module imports: 6 > 5, refused before any submit
      const error = await viteBuild(root, { ...online(), maxNewImages: 5 }).catch((e: unknown) => e as Error)
      expect((error as Error).message).toContain('6 new images would be generated, more than `maxNewImages` allows (5)')
      expect(server.requests).toBe(0)
      expect(walks).toHaveBeenCalledTimes(1)

      await viteBuild(root, { ...online(), maxNewImages: 6 })
      expect(server.submits.map((s) => s.prompt).sort()).toEqual(['A lighthouse at dusk', 'A paper-cut skyline', 'A robot mascot', 'Rolling hills'])
      server.reset()
      walks.mockClear()
      // Every imported image is cached: nothing is walked, so the 2 missing images no module imports do not count.
      const warm = await viteBuild(root, { ...online(), maxNewImages: 0 })
      expect(warm.logs.join('\n')).toMatch(/imagegen: 4 images — 4 cached, 0 generated/)
      expect(walks).not.toHaveBeenCalled()
      expect(server.requests).toBe(0)
    } finally {
      walks.mockRestore()
    }
  })

  it('names the entry and the provider message on failure, and keeps the images that arrived', async () => {
    const root = viteProject()
    server.options.fail = (body) => (body.prompt === 'A robot mascot' ? 'NSFW content detected' : undefined)
    try {
      const error = await viteBuild(root, online()).catch((e: unknown) => e as Error)
      expect((error as Error).message).toMatch(/src\/art\.images\.yaml:\d+:3 `avatar`: .*NSFW content detected/)
    } finally {
      server.options.fail = undefined
    }
    server.reset()
    await viteBuild(root, online())
    expect(server.submits).toHaveLength(1)
    expect(server.submits[0]).toMatchObject({ prompt: 'A robot mascot' })
  })

  it('leaves the key in no file and no output', async () => {
    const root = viteProject()
    const result = await viteBuild(root, online())
    expect(filesContaining(root, API_KEY)).toEqual([])
    expect(result.logs.join('\n')).not.toContain(API_KEY)
  })
})
