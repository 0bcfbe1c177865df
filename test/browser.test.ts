import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { extname, join, normalize } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { build, createLogger } from 'vite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import imagegen from '../src/vite'
import { tempDir } from './helpers/temp'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const site = join(import.meta.dirname, '../examples/site')
const screenshots = join(import.meta.dirname, '../test-results')
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.webp': 'image/webp', '.avif': 'image/avif', '.png': 'image/png' }

// Debian's chromium is installed by .ci/run, so CI always runs this test. On a machine
// without it (`apt-get install chromium`), it is skipped rather than failing `npm test`.
const hasBrowser = existsSync(CHROMIUM) || process.env.CI === 'true'
if (!hasBrowser) console.warn(`browser test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`)

describe.skipIf(!hasBrowser)('the demo in headless Chromium', () => {
  let server: Server
  let browser: Browser
  let origin: string

  beforeAll(async () => {
    const outDir = tempDir('imagegen-browser-')
    await build({ root: site, configFile: false, customLogger: createLogger('silent'), plugins: [imagegen({ mode: 'offline' })], build: { outDir, emptyOutDir: true } })
    server = createServer((req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url!, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '')
      const file = join(outDir, path.endsWith('/') ? `${path}index.html` : path)
      if (!file.startsWith(outDir) || !existsSync(file)) return res.writeHead(404).end()
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  })
  afterAll(async () => {
    await browser?.close()
    await new Promise((resolve) => server?.close(resolve))
  })

  /** Opens the page at a viewport width and waits until every image has decoded. */
  async function open(width: number) {
    const page = await browser.newPage({ viewport: { width, height: 900 }, deviceScaleFactor: 1 })
    await page.goto(`${origin}/`)
    await page.waitForFunction(() => {
      const images: { complete: boolean; naturalWidth: number }[] = [...(globalThis as any).document.images]
      return images.length === 4 && images.every((img) => img.complete && img.naturalWidth > 0)
    })
    const images = await page.$$eval('img', (imgs: any[]) =>
      imgs.map((img) => ({ alt: img.alt, src: img.src, currentSrc: img.currentSrc, srcset: img.srcset, declared: [Number(img.getAttribute('width')), Number(img.getAttribute('height'))] })),
    )
    return { page, images }
  }

  it('decodes every image at its expected natural size, and picks a smaller candidate on a narrow screen', async () => {
    const wide = await open(1280)
    expect(wide.images.map((i) => i.alt)).toEqual(['Mountains over a still lake at sunset', 'A lighthouse at dusk', 'A friendly robot mascot', 'A paper-cut city skyline'])
    const decode = (src: string) =>
      wide.page.evaluate(async (url) => {
        const img = new (globalThis as any).Image()
        img.src = url
        await img.decode()
        return [img.naturalWidth, img.naturalHeight]
      }, src)
    for (const image of wide.images) {
      const candidates = (image.srcset as string).split(', ').map((c) => c.split(' ') as [string, string])
      // The browser showed one of the candidates…
      expect(candidates.map(([url]) => new URL(url, origin).href), image.alt).toContain(image.currentSrc)
      // …each of which decodes at the width its descriptor promises, in the image's proportions,
      for (const [url, descriptor] of candidates) {
        const width = parseInt(descriptor)
        expect(await decode(url), url).toEqual([width, Math.round((width * image.declared[1]!) / image.declared[0]!)])
      }
      // …and `src`, the full-size file, decodes at the exported width and height.
      expect(await decode(image.src)).toEqual(image.declared)
    }
    expect(wide.images[0]!.currentSrc).toBe(wide.images[0]!.src)
    mkdirSync(screenshots, { recursive: true })
    await wide.page.screenshot({ path: join(screenshots, 'demo-wide.png'), fullPage: true })

    const narrow = await open(360)
    const hero = narrow.images[0]!
    expect(hero.currentSrc).not.toBe(hero.src)
    expect(hero.currentSrc).toMatch(/-480-[\w-]+\.webp$/)
    expect(await narrow.page.evaluate(() => (globalThis as any).document.images[0].complete)).toBe(true)
    await narrow.page.screenshot({ path: join(screenshots, 'demo-narrow.png'), fullPage: true })
  })
})
