import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { createLogger, createServer, type ViteDevServer } from 'vite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openProject } from '../src/index'
import type { Options } from '../src/options'
import { BudgetError } from '../src/core/plan'
import { candidatesOf, pinSeed } from '../src/core/variants'
import type { GalleryState } from '../src/gallery'
import imagegen from '../src/vite'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { viteProject } from './helpers/vite-project'

const API_KEY = 'sk-imagegen-gallery-7c1d'
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// As in browser.test.ts: CI always has Chromium; elsewhere without it, the browser tests are skipped.
const hasBrowser = existsSync(CHROMIUM) || process.env.CI === 'true'
if (!hasBrowser) console.warn(`gallery browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`)

/** A page that shows the manifest's `banner` (and follows its HMR updates by reloading). */
const APP = {
  'index.html': '<!doctype html><html><body><img id="banner" alt="banner"><script type="module" src="/src/main.js"></script></body></html>',
  'src/main.js': "import art from './art.images.yaml'\nconst img = document.getElementById('banner')\nimg.src = art.banner.src\nimg.dataset.key = art.banner.key\n",
}

let atlas: AtlasServer
let browser: Browser | undefined
const servers: ViteDevServer[] = []

beforeAll(async () => {
  atlas = await startAtlasServer({ apiKey: API_KEY })
  if (hasBrowser) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  }
})
afterAll(async () => {
  await browser?.close()
  for (const server of servers) await server.close()
  await atlas.close()
})

/** Waits until `check` holds, polling; fails after a generous bound instead of hanging. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`gave up waiting for ${what} (${JSON.stringify({ submits: atlas.submits.length, requests: atlas.requests })})`)
}

/** A project whose art manifest's current images are cached (hero.images.yaml is not), served by a Vite dev server. */
async function serve(extra: Options = {}) {
  const root = viteProject(APP)
  const options = { root, apiKey: API_KEY, baseURL: atlas.url, pollIntervalMs: 5 }
  const project = openProject(options)
  const art = join(root, 'src/art.images.yaml')
  await project.scheduler().generate(project.plan((await project.read(art)).entries).missing)
  atlas.reset()
  const logs: string[] = []
  const logger = createLogger('silent')
  logger.info = (msg) => void logs.push(msg)
  const server = await createServer({
    root,
    configFile: false,
    customLogger: logger,
    plugins: [imagegen({ ...options, ...extra })],
    server: { host: '127.0.0.1', port: 0 },
  })
  servers.push(server)
  await server.listen()
  const origin = `http://127.0.0.1:${(server.httpServer!.address() as { port: number }).port}`
  return { root, art, project, origin, logs }
}

const banner = (page: Page) => page.getByRole('article', { name: 'src/art.images.yaml#banner' })

describe.skipIf(!hasBrowser)('the gallery in headless Chromium', () => {
  it('makes variants of an entry with its button, and "Use this" pins the seed as `imagegen pick` does; the app updates', async () => {
    const { art, project, origin, logs } = await serve()
    expect(logs.filter((line) => line.includes('gallery'))).toEqual([`  imagegen gallery: ${origin}/__imagegen/`])
    const before = readFileSync(art, 'utf8')
    const entry = (await project.read(art)).entries.find((e) => e.name === 'banner')!
    const candidates = candidatesOf(entry, 4)

    const app = await browser!.newPage()
    await app.goto(`${origin}/`)
    const shown = () => app.locator('#banner').evaluate((img: any) => ({ key: img.dataset.key, src: img.src, loaded: img.complete && img.naturalWidth > 0 }))
    await until(async () => (await shown()).key === entry.key, 'the app to show the current banner')
    const first = await shown()

    const gallery = await browser!.newPage({ viewport: { width: 1100, height: 900 }, deviceScaleFactor: 1 })
    await gallery.goto(`${origin}/__imagegen/`)
    await banner(gallery).getByRole('button', { name: 'Variants' }).waitFor()
    // by keyboard: Tab to the first entry's Variants button (past its count field), Enter
    await gallery.keyboard.press('Tab')
    expect(await gallery.evaluate(() => (globalThis as any).document.activeElement.labels[0].textContent)).toBe('Candidates')
    await gallery.keyboard.press('Tab')
    await gallery.keyboard.press('Enter')
    // the three new candidates, made in the background and shown as they arrive
    const uses = banner(gallery).getByRole('button', { name: /^Use this: seed \d+$/ })
    await until(async () => (await banner(gallery).locator('img').count()) === 4 && (await uses.count()) === 3, 'the candidates in the page')
    await until(() => gallery.evaluate(() => [...(globalThis as any).document.images].every((img: any) => img.complete && img.naturalWidth > 0)), 'the images to load')
    // submitted at once, in any order
    expect(atlas.submits.map((s) => s.prompt)).toEqual(Array(3).fill('A paper-cut skyline'))
    expect(atlas.submits.map((s) => s.seed).sort()).toEqual(candidates.slice(1).map((c) => c.seed).sort())
    expect(await banner(gallery).getByRole('status').textContent()).toBe('')
    const focused = () => gallery.evaluate(() => (globalThis as any).document.activeElement.outerHTML as string)
    expect(await focused()).toContain('>Variants</button>')
    expect(await focused()).toContain('data-target="src/art.images.yaml#banner"')
    if (process.env.IMAGEGEN_SCREENSHOT === '1') await gallery.screenshot({ path: join(import.meta.dirname, '../docs/gallery.png'), fullPage: true })

    const chosen = candidates[2]!
    await banner(gallery).getByRole('button', { name: `Use this: seed ${chosen.seed}` }).click()
    await until(() => readFileSync(art, 'utf8') !== before, 'the manifest to change')
    expect(readFileSync(art, 'utf8')).toBe(pinSeed(before, 'banner', chosen.seed))
    await until(async () => (await banner(gallery).getByRole('status').textContent()) !== '', 'the answer in the page')
    expect(await banner(gallery).getByRole('status').textContent()).toBe(`seed ${entry.pixels.seed} → ${chosen.seed}: the manifest is updated`)
    // the app's module is updated through HMR, with the chosen image (cached already: no request)
    await until(async () => (await shown()).key === chosen.entry.key, "the app to show the chosen candidate's image")
    const now = await shown()
    expect(now.src).not.toBe(first.src)
    expect(now.src).toMatch(new RegExp(`^${origin}/@imagegen/[0-9a-f]{32}-\\d+\\.webp$`))
    await until(async () => (await shown()).loaded, 'the new image to load')
    expect(atlas.submits).toHaveLength(3)
  })

  it('with maxNewImages: 2, refuses 4 variants before any submit and shows the bill-guard message', async () => {
    const { origin } = await serve({ maxNewImages: 2 })
    const gallery = await browser!.newPage()
    await gallery.goto(`${origin}/__imagegen/`)
    await banner(gallery).getByRole('button', { name: 'Variants' }).click()
    await until(async () => (await banner(gallery).getByRole('status').textContent())!.length > 0, 'the message')
    expect(await banner(gallery).getByRole('status').textContent()).toBe(new BudgetError(3, 2, 2).message)
    expect(atlas.requests).toBe(0)
  })
})

describe('the gallery API', () => {
  it('refuses cross-origin requests (403), GET actions, and files that are not manifests of the project; submits nothing', async () => {
    const { origin, art } = await serve()
    const before = readFileSync(art, 'utf8')
    const post = (action: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${origin}/__imagegen/api/${action}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) })
    const variants = { file: 'src/art.images.yaml', entry: 'banner' }
    expect((await post('variants', variants, { Origin: 'https://evil.example' })).status).toBe(403)
    expect((await post('variants', variants, { 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403)
    expect((await post('pick', { ...variants, seed: 7 }, { Origin: 'https://evil.example' })).status).toBe(403)
    expect((await fetch(`${origin}/__imagegen/api/variants`)).status).toBe(405)
    expect((await post('pick', { file: '../outside.images.yaml', seed: 7 })).status).toBe(404)
    expect((await post('pick', { file: 'src/art.images.yaml', entry: 'nope', seed: 7 })).status).toBe(404)
    expect(readFileSync(art, 'utf8')).toBe(before)
    expect(atlas.requests).toBe(0)
    // the page's own state: the art entries cached, the hero (not imported) missing with the reason
    const state = (await (await fetch(`${origin}/__imagegen/api/manifests`)).json()) as GalleryState
    expect(state.manifests.map((m) => [m.file, m.entries.map((e) => [e.name ?? null, e.state])])).toEqual([
      ['src/art.images.yaml', [['banner', 'cached'], ['avatar', 'cached'], ['hero-wide', 'cached']]],
      ['src/hero.images.yaml', [[null, 'missing']]],
    ])
    expect(JSON.stringify(state)).not.toContain(API_KEY)
  })

  it("shares the dev server's bill guard with the plugin's own images: maxNewImages holds for both together", async () => {
    const { origin } = await serve({ maxNewImages: 3 })
    // the page's import of the missing hero makes 1 image in the background
    await fetch(`${origin}/src/hero.images.yaml?import`)
    await until(() => atlas.downloads === 1, 'the hero image')
    const refused = await fetch(`${origin}/__imagegen/api/variants`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ file: 'src/art.images.yaml', entry: 'banner', count: 4 }),
    })
    expect(refused.status).toBe(409)
    expect(((await refused.json()) as { error: string }).error).toBe(new BudgetError(3, 2, 3).message)
    expect(atlas.submits).toHaveLength(1)
  })

  it("shows an image the plugin failed to make in the background as failed, with the service's message", async () => {
    const { origin } = await serve()
    atlas.options.fail = () => 'NSFW content detected'
    try {
      await fetch(`${origin}/src/hero.images.yaml?import`)
      const heroState = async () => {
        const state = (await (await fetch(`${origin}/__imagegen/api/manifests`)).json()) as GalleryState
        return state.manifests.find((m) => m.file === 'src/hero.images.yaml')!.entries[0]!
      }
      await until(async () => (await heroState()).state === 'failed', 'the failed state')
      expect((await heroState()).error).toMatch(/failed: NSFW content detected\./)
    } finally {
      atlas.options.fail = undefined
    }
  })

  it('offline, says why variants cannot be made, and submits nothing', async () => {
    const { origin } = await serve({ mode: 'offline' })
    const answer = await fetch(`${origin}/__imagegen/api/variants`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ file: 'src/art.images.yaml', entry: 'banner', count: 2 }),
    })
    expect(answer.status).toBe(409)
    const { error } = (await answer.json()) as { error: string }
    expect(error).toMatch(/^1 image is not in the cache and cannot be generated: offline mode is on \(`mode: 'offline'` or IMAGEGEN_OFFLINE=1\)\. Nothing was submitted\./)
    const state = (await (await fetch(`${origin}/__imagegen/api/manifests`)).json()) as GalleryState
    const banner = state.manifests[0]!.entries[0]!
    expect(banner.variants).toEqual({ count: 2, running: false, error })
    expect(banner.candidates).toMatchObject([{ number: 2, state: 'missing', reason: "offline mode is on (`mode: 'offline'` or IMAGEGEN_OFFLINE=1)" }])
    expect(atlas.requests).toBe(0)
  })
})
