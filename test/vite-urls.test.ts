/**
 * Image URLs in Vite builds come from Vite's own asset handling: `base`, `renderBuiltUrl`, SSR
 * builds, `build.assetsInlineLimit` and library mode, on the repository's Vite and on Vite 7.
 */
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import sharp from 'sharp'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLogger, createServer, type ViteDevServer } from 'vite'
import imagegen from '../src/vite'
import { importVite, install } from './helpers/install'
import { listFiles } from './helpers/temp'
import { viteBuild, viteProject } from './helpers/vite-project'

type Vite = typeof import('vite')

const FILES = {
  // About 7 KB as WebP, so a file even under a 4 KB `assetsInlineLimit`; the icon is under it.
  'src/hero.images.yaml': 'prompt: A lighthouse at dusk\nwidth: 1024\nheight: 576\n',
  'src/icon.images.yaml': 'prompt: A tiny red kite\nwidth: 64\nheight: 64\n',
  'src/entry-server.js': "import hero from './hero.images.yaml'\nexport const render = () => `<img src=\"${hero.src}\">`\n",
  'src/entry-client.js': "import hero from './hero.images.yaml'\nimport icon from './icon.images.yaml'\nglobalThis.__imagegen = { hero, icon }\n",
  'src/index.js': "export { default as hero } from './hero.images.yaml'\n",
}

let imports = 0
const load = async (file: string) => import(`${pathToFileURL(file).href}?build=${++imports}`)
const HASHED = /[0-9a-f]{32}-1024-[\w-]{8}\.webp/

const versions: [string, () => Promise<Vite>][] = [
  ['vite 8 (the repository)', () => import('vite')],
  ['vite 7', async () => importVite(install('vite@7'))],
  ['vite 6', async () => importVite(install('vite@6'))],
  ['vite 5', async () => importVite(install('vite@5'))],
]

describe.each(versions)('%s', (_, loadVite) => {
  let vite: Vite
  beforeAll(async () => {
    vite = await loadVite()
  }, 120_000)

  /** A real build of a project made from FILES, into `<root>/<out>`. */
  async function build(root: string, out: string, config: import('vite').InlineConfig): Promise<string> {
    const outDir = join(root, out)
    await vite.build({ root, configFile: false, logLevel: 'silent', plugins: [imagegen({ root, provider: 'placeholder' })], ...config, build: { outDir, ...config.build } })
    return outDir
  }

  it.each(['/', '/site/'])('SSR and client builds give the same `%sassets/…` URL, never a file: URL', async (base) => {
    const root = viteProject(FILES)
    const server = await build(root, 'dist/server', { base, build: { ssr: 'src/entry-server.js' } })
    const { render } = await load(join(server, readdirSync(server).find((f) => /^entry-server\.m?js$/.test(f))!))
    const html: string = render()
    expect(html).toMatch(new RegExp(`^<img src="${base}assets/${HASHED.source}">$`))
    expect(html).not.toContain('file:')
    const client = await build(root, 'dist/client', { base, build: { rollupOptions: { input: join(root, 'src/entry-client.js') } } })
    expect(listFiles(client)).toContain(html.slice(`<img src="${base}`.length, -2))
  })

  it('follows `experimental.renderBuiltUrl`', async () => {
    const root = viteProject(FILES)
    const renderBuiltUrl = (file: string) => `https://cdn.example/${file}`
    const server = await build(root, 'dist/server', { experimental: { renderBuiltUrl }, build: { ssr: 'src/entry-server.js' } })
    const { render } = await load(join(server, readdirSync(server).find((f) => /^entry-server\.m?js$/.test(f))!))
    expect(render()).toMatch(new RegExp(`^<img src="https://cdn\\.example/assets/${HASHED.source}">$`))
  })

  it('emits even small images as files, unless the app sets `build.assetsInlineLimit`', async () => {
    const root = viteProject(FILES)
    const input = join(root, 'src/entry-client.js')
    const built = async (config: import('vite').InlineConfig) => {
      const outDir = await build(root, 'dist', { ...config, build: { ...config.build, rollupOptions: { input } } })
      await load(join(outDir, listFiles(outDir).find((f) => f.endsWith('.js'))!))
      return (globalThis as any).__imagegen
    }
    const byDefault = await built({})
    expect(byDefault.icon.src).toMatch(/^\/assets\/[0-9a-f]{32}-64-[\w-]{8}\.webp$/)
    expect(listFiles(join(root, 'dist'))).toContain(byDefault.icon.src.slice(1))
    // Vite's own rule, when asked for: assets under 4 KB inlined
    const limited = await built({ build: { assetsInlineLimit: 4096 } })
    expect(limited.icon.src).toMatch(/^data:image\/webp;base64,/)
    expect(limited.hero.src).toMatch(new RegExp(`^/assets/${HASHED.source}$`))
  })

  it('inlines images in library mode, so that they travel with the library', async () => {
    const root = viteProject(FILES)
    const outDir = await build(root, 'dist', { build: { lib: { entry: join(root, 'src/index.js'), formats: ['es'], fileName: 'lib' } } })
    const { hero } = await load(join(outDir, listFiles(outDir).find((f) => /\.m?js$/.test(f))!))
    expect(hero.src).toMatch(/^data:image\/webp;base64,/)
    const meta = await sharp(Buffer.from(hero.src.split(',')[1], 'base64')).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 1024, 576])
    expect(listFiles(outDir).filter((f) => f.endsWith('.webp'))).toEqual([])
  })
})

describe('vite dev', () => {
  let server: ViteDevServer | undefined
  afterEach(() => server?.close())

  it('puts `server.origin` before image URLs, and answers 404 for any other file under the route', async () => {
    const root = viteProject({ 'index.html': '<!doctype html><img id="hero"><script type="module" src="/src/main.js"></script>\n' })
    await viteBuild(root, { provider: 'placeholder' })
    const errors: string[] = []
    const customLogger = createLogger('silent')
    customLogger.error = (message) => void errors.push(message)
    // Backend integration: the page comes from another server, so asset URLs carry the dev server's origin.
    server = await createServer({
      root,
      configFile: false,
      customLogger,
      plugins: [imagegen({ root, provider: 'placeholder' })],
      server: { host: '127.0.0.1', port: 0, origin: 'http://127.0.0.1:5199', hmr: false, ws: false },
    })
    await server.listen()
    const at = `http://127.0.0.1:${(server.httpServer!.address() as { port: number }).port}`
    const get = (path: string) => fetch(`${at}${path}`)

    // As a browser would: the entry, then the manifest module at the URL the entry imports.
    const main = await (await get('/src/main.js')).text()
    const url = /import hero from "([^"]+)"/.exec(main)![1]!
    expect(url).not.toMatch(/\.ya?ml$/)
    const src = JSON.parse(/"src": ("[^"]+")/.exec(await (await get(url)).text())![1]!) as string
    expect(src).toMatch(/^http:\/\/127\.0\.0\.1:5199\/@imagegen\/[0-9a-f]{32}-96\.webp$/)
    const image = await get(new URL(src).pathname)
    expect([image.status, image.headers.get('content-type')]).toEqual([200, 'image/webp'])
    // The dependency scan follows the manifest module without reading the YAML file as JavaScript.
    await server.environments.client.depsOptimizer?.scanProcessing
    expect(errors).toEqual([])

    for (const missing of ['/@imagegen/nonexistent.webp', `/@imagegen/${'0'.repeat(64)}.webp`, '/@imagegen/..%2F..%2Fpackage.json']) {
      const response = await get(missing)
      expect([missing, response.status]).toEqual([missing, 404])
    }
    // …where any other path gets the app's page.
    expect((await get('/a/page')).headers.get('content-type')).toMatch(/^text\/html/)
  })
})
