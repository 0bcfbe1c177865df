import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { createLogger, createServer, type ViteDevServer } from 'vite'
import { afterEach, describe, expect, it } from 'vitest'
import imagegen from '../src/vite'
import type { Options } from '../src/options'
import { listFiles } from './helpers/temp'
import { viteBuild, viteProject } from './helpers/vite-project'

let server: ViteDevServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

async function devServer(root: string, options: Options) {
  const logs: string[] = []
  const logger = createLogger('info')
  logger.info = (msg) => void logs.push(msg)
  logger.warn = (msg) => void logs.push(msg)
  server = await createServer({
    root,
    base: '/site/',
    configFile: false,
    customLogger: logger,
    plugins: [imagegen({ root, ...options })],
    server: { host: '127.0.0.1', port: 0, hmr: false, ws: false },
  })
  await server.listen()
  const address = server.httpServer!.address() as { port: number }
  const origin = `http://127.0.0.1:${address.port}`
  const get = async (path: string) => {
    const response = await fetch(`${origin}${path}`)
    return { status: response.status, type: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) }
  }
  return { get, logs }
}

/** The `src` values of a served manifest module. */
const sources = (code: string) => [...code.matchAll(/"src": ("[^"]*")/g)].map((m) => JSON.parse(m[1]!) as string)

describe('vite dev', () => {
  it('serves images straight from the caches, not copied or re-encoded', async () => {
    const root = viteProject({ 'src/hero.images.yaml': 'prompt: A lighthouse at dusk\nwidth: 96\nheight: 64\nformat: original\n' })
    await viteBuild(root, { provider: 'placeholder' })
    const derived = join(root, 'node_modules/.cache/unplugin-imagegen')
    // the derived images (the caches' own bookkeeping, such as the memo of verified files, may be written meanwhile)
    const images = () => listFiles(derived).filter((f) => /\.(webp|avif|png|jpe?g)$/.test(f)).map((f) => [f, statSync(join(derived, f)).mtimeMs])
    const before = images()
    expect(before.length).toBeGreaterThan(0)
    const { get } = await devServer(root, { provider: 'placeholder' })

    // `format: original`: the cached file itself.
    const [src] = sources((await get('/site/src/hero.images.yaml?import')).body.toString())
    expect(src).toMatch(/^\/site\/@imagegen\/[0-9a-f]{64}\.png$/)
    const image = await get(src!)
    expect(image.status).toBe(200)
    expect(image.type).toBe('image/png')
    expect(image.body.equals(readFileSync(join(root, '.imagegen/images', src!.split('/').pop()!)))).toBe(true)

    // The default WebP: the file the build already derived, served from the derived cache untouched.
    const webps = sources((await get('/site/src/art.images.yaml?import')).body.toString())
    expect(webps).toHaveLength(3)
    for (const url of webps) {
      expect(url).toMatch(/^\/site\/@imagegen\/[0-9a-f]{32}-\d+\.webp$/)
      const served = await get(url)
      expect(served.type).toBe('image/webp')
      expect(served.body.equals(readFileSync(join(derived, url.split('/').pop()!)))).toBe(true)
    }
    expect(images()).toEqual(before)
    // Only cache names of the right shape are served.
    expect((await get('/site/@imagegen/..%2F..%2Fpackage.json')).status).not.toBe(200)
  })

  it('shows a placeholder and warns when images are missing and cannot be generated', async () => {
    const root = viteProject()
    const { get, logs } = await devServer(root, { baseURL: 'http://127.0.0.1:9' })
    const module = await get('/site/src/art.images.yaml?import')
    expect(module.status).toBe(200)
    const srcs = sources(module.body.toString())
    expect(srcs).toHaveLength(3)
    for (const src of srcs) expect(src).toMatch(/^data:image\/svg\+xml,/)
    expect(decodeURIComponent(srcs[0]!)).toContain('width="128" height="64"')
    const warning = logs.find((l) => l.includes('showing placeholders'))
    expect(warning).toContain('no API key is set (ATLASCLOUD_API_KEY)')
    expect(warning).toContain('src/art.images.yaml:5:3 `banner`')
  })
})
