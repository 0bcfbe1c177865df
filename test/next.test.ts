/**
 * `unplugin-imagegen/next` in a real Next.js 16 app, as a user installs it: the packed package
 * (build it first: `npm test` does), `next build` with Turbopack and with webpack, then
 * `next start` and every image URL of the served page fetched as a browser would.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import sharp from 'sharp'
import { beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from './helpers/temp'

const repo = join(import.meta.dirname, '..')
/** Without what vitest and npm set (NODE_ENV=test would make Next build in test mode) and without any Atlas key. */
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NODE_ENV|VITEST.*|TEST|ATLASCLOUD_.*|npm_lifecycle_.*|npm_package_.*)$/.test(k))),
  NEXT_TELEMETRY_DISABLED: '1',
  npm_config_update_notifier: 'false',
}
const npm = (cwd: string, ...args: string[]) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd, env, encoding: 'utf8' })

const FILES: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'next-site', private: true }),
  'imagegen.config.json': '{ "provider": "placeholder" }\n',
  'next.config.mjs': "import { withImagegen } from 'unplugin-imagegen/next'\nexport default withImagegen({ reactStrictMode: true })\n",
  'imagegen.d.ts': '/// <reference types="unplugin-imagegen/client" />\n',
  'app/layout.tsx': 'export default function Layout({ children }: { children: React.ReactNode }) {\n  return <html lang="en"><body>{children}</body></html>\n}\n',
  'app/page.tsx': `import Image from 'next/image'
import hero from './hero.images.yaml'
import art from './art.images.yaml'

export default function Page() {
  return (
    <main>
      <img id="plain" src={hero.src} alt="" />
      <Image id="hero" src={hero} alt="" />
      <Image id="banner" src={art.banner} alt="" placeholder="blur" />
    </main>
  )
}
`,
  'app/hero.images.yaml': 'prompt: A lighthouse at dusk\nwidth: 256\nheight: 128\n',
  'app/art.images.yaml': 'images:\n  banner:\n    prompt: Paper-cut skyline\n    width: 192\n    height: 64\n    placeholder: blur\n',
}
/** The size of each `<img>`'s image, from its manifest. */
const SIZES: Record<string, [number, number]> = { plain: [256, 128], hero: [256, 128], banner: [192, 64] }

let app: string
let next: string

beforeAll(() => {
  if (!existsSync(join(repo, 'dist/next-loader.cjs'))) throw new Error('dist/ has no Next entries: build the package first (`npm run build`)')
  const packs = tempDir('imagegen-pack-')
  npm(repo, 'pack', '--pack-destination', packs)
  const tarball = join(packs, readdirSync(packs).find((f) => f.endsWith('.tgz'))!)
  app = tempDir('imagegen-next-')
  for (const [file, text] of Object.entries(FILES)) {
    mkdirSync(join(app, file, '..'), { recursive: true })
    writeFileSync(join(app, file), text)
  }
  // Next 16 needs Node >=20.9, so it runs where this package does.
  npm(app, 'install', tarball, 'next@16', 'react@19', 'react-dom@19', 'typescript@5', '@types/react@19', '@types/node@20')
  next = join(app, 'node_modules/next/dist/bin/next')
}, 240_000)

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

/** `<img>` attributes by id, entities decoded. */
function images(html: string): Record<string, Record<string, string>> {
  const decode = (s: string) => s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#x27;/g, "'")
  const out: Record<string, Record<string, string>> = {}
  for (const [, attrs] of html.matchAll(/<img\b([^>]*)>/g)) {
    const a = Object.fromEntries([...attrs!.matchAll(/([\w-]+)="([^"]*)"/g)].map(([, k, v]) => [k!.toLowerCase(), decode(v!)]))
    out[a.id ?? `#${Object.keys(out).length}`] = a
  }
  return out
}

describe('withImagegen in a Next.js 16 app', () => {
  it.each([
    ['Turbopack', []],
    ['webpack', ['--webpack']],
  ])('next build (%s) emits the images under /_next/static/media and next start serves every <img> URL', async (_, flags) => {
    rmSync(join(app, '.next'), { recursive: true, force: true })
    const build = spawnSync(process.execPath, [next, 'build', ...(flags as string[])], { cwd: app, env, encoding: 'utf8' })
    expect(build.status, `next build failed:\n${build.stdout}\n${build.stderr}`).toBe(0)

    // Every emitted "image" is one: not the 304-byte `export default {src,…}` of Next's image loader.
    const media = join(app, '.next/static/media')
    const emitted = new Map<string, [number, number]>()
    for (const file of readdirSync(media)) {
      const bytes = readFileSync(join(media, file))
      const meta = await sharp(bytes).metadata().catch(() => undefined)
      expect(meta, `.next/static/media/${file} is not an image (${bytes.length} bytes: ${bytes.subarray(0, 60).toString()})`).toBeDefined()
      emitted.set(`/_next/static/media/${file}`, [meta!.width, meta!.height])
    }
    expect([...emitted.values()].sort()).toEqual([[192, 64], [256, 128]])

    const port = await freePort()
    const origin = `http://127.0.0.1:${port}`
    const server = spawn(process.execPath, [next, 'start', '-H', '127.0.0.1', '-p', String(port)], { cwd: app, env, detached: true, stdio: 'ignore' })
    try {
      let html = ''
      for (let i = 0; i < 120 && !html; i++) html = await fetch(`${origin}/`).then((r) => r.text(), () => new Promise<string>((r) => setTimeout(() => r(''), 250)))
      expect(html, 'next start did not answer').toContain('<main')
      expect(html).not.toContain('file:')
      const tags = images(html)
      expect(Object.keys(tags).sort()).toEqual(['banner', 'hero', 'plain'])
      for (const [id, attrs] of Object.entries(tags)) {
        const [width, height] = SIZES[id]!
        const urls = [attrs.src!, ...(attrs.srcset ?? '').split(', ').filter(Boolean).map((c) => c.split(' ')[0]!)]
        for (const url of urls) {
          const response = await fetch(new URL(url, origin))
          expect(response.status, `${id}: ${url}`).toBe(200)
          expect(response.headers.get('content-type'), `${id}: ${url}`).toMatch(/^image\//)
          const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata()
          // The optimizer (`/_next/image?url=…&w=…`) may resize; the file it serves from is the emitted one.
          const file = url.startsWith('/_next/image') ? new URL(url, origin).searchParams.get('url')! : url
          expect(emitted.get(file), `${id}: ${url} is not served from an emitted file`).toEqual([width, height])
          expect(meta.width! / meta.height!, `${id}: ${url}`).toBeCloseTo(width / height, 1)
        }
      }
      expect(tags.plain!.src).toMatch(/^\/_next\/static\/media\/.+\.webp$/)
      expect(
        tags.banner!.style ?? '',
        'placeholder="blur": the imported object needs `blurDataURL` (the module code gives it for `placeholder: blur`)',
      ).toMatch(/background-image:url\("data:image\/svg\+xml.*data:image\/webp;base64,/)
    } finally {
      process.kill(-server.pid!, 'SIGTERM')
    }
  }, 240_000)
})
