import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { viteProject } from './helpers/vite-project'

describe.each(['webpack', 'rspack'] as const)('%s watch mode', (bundler) => {
  it('rebuilds when a manifest changes, with the new image', async () => {
    const root = viteProject()
    const compile = bundler === 'webpack' ? (await import('webpack')).default : (await import('@rspack/core')).rspack
    const { default: imagegen } = bundler === 'webpack' ? await import('../src/webpack') : await import('../src/rspack')
    const compiler = (compile as any)({
      mode: 'development',
      context: root,
      entry: join(root, 'src/main.js'),
      devtool: false,
      output: { path: join(root, 'out'), filename: 'main.js', publicPath: '/' },
      plugins: [imagegen({ root, provider: 'placeholder' })],
    })
    const builds: string[] = []
    let edited = false
    await new Promise<void>((resolve, reject) => {
      const watching = compiler.watch({ aggregateTimeout: 50 }, (error: Error | null, stats: any) => {
        if (error || stats.hasErrors()) return reject(error ?? new Error(stats.toString()))
        const output = readFileSync(join(root, 'out/main.js'), 'utf8')
        builds.push(output)
        if (!edited) {
          edited = true
          const file = join(root, 'src/hero.images.yaml')
          // Let the watcher settle on the first build's files (it may rebuild once for the
          // images that build wrote) before the edit.
          setTimeout(() => writeFileSync(file, readFileSync(file, 'utf8').replace('at dusk', 'at dawn')), 300)
        } else if (output.includes('A lighthouse at dawn')) {
          watching.close(() => resolve())
        }
      })
    })
    expect(builds[0]).toContain('A lighthouse at dusk')
    // A watcher cannot swap placeholders later, so images are waited for: none is a placeholder.
    for (const build of builds) expect(build).not.toContain('data:image/svg+xml')
    expect(builds.at(-1)).toContain('A lighthouse at dawn')
    expect(builds.at(-1)).not.toContain('A lighthouse at dusk')
  })
})

interface WatchEvent {
  code: string
  error?: unknown
  result?: { close(): unknown } | null
}
interface Watcher {
  on(event: 'event', listener: (event: WatchEvent) => unknown): unknown
  close(): unknown
}
/** One step of a watch session: an edit (none for the first build), then a check of the build it causes. */
interface Step {
  edit?: () => void
  check: () => Promise<void>
}

/**
 * Runs `steps` against a Rollup-style watcher: each check runs when a build ends (the watcher waits
 * for it, so no other build writes meanwhile), then the next edit is made. A watcher may still be
 * adding its file watches when a build ends, so the edit is written again until a build starts;
 * a watcher that never rebuilds fails the test, with the step, rather than leaving it waiting.
 */
function runWatch(watcher: Watcher, steps: Step[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let step = 0
    let nudge: NodeJS.Timeout | undefined
    const stop = async (error?: unknown) => {
      clearInterval(nudge)
      await watcher.close()
      if (error) reject(error)
      else resolve()
    }
    watcher.on('event', async (event) => {
      if (event.code === 'START') clearInterval(nudge)
      if (event.code === 'BUNDLE_END' || event.code === 'ERROR') await event.result?.close()
      if (event.code === 'ERROR') return stop(event.error)
      if (event.code !== 'END') return
      try {
        await steps[step]!.check()
        const edit = steps[++step]?.edit
        if (!edit) return stop()
        edit()
        let tries = 0
        nudge = setInterval(() => (++tries > 100 ? stop(new Error(`no rebuild after the edit of step ${step}`)) : edit()), 100)
      } catch (error) {
        await stop(error)
      }
    })
  })
}

const HERO = 'prompt: A lighthouse at dusk\nwidth: 96\nheight: 64\nalt: A lighthouse at dusk\nimage: ./reference.png\n'
const reference = (color: string) => sharp({ create: { width: 16, height: 16, channels: 3, background: color } }).png().toBuffer()

let loads = 0
/** A watch session over a manifest: its first build, an edit of the prompt and alt, then of its reference image. */
async function session(root: string, output: () => Promise<{ hero: any; file: (src: string) => string }>): Promise<Step[]> {
  const manifest = join(root, 'src/hero.images.yaml')
  const [red, blue] = await Promise.all([reference('#c00'), reference('#00c')])
  writeFileSync(join(root, 'src/reference.png'), red)
  writeFileSync(manifest, HERO)
  const keys: string[] = []
  const expectHero = async (alt: string) => {
    const { hero, file } = await output()
    expect(hero.alt).toBe(alt)
    expect(hero.src).toMatch(/[0-9a-f]{32}-96-[\w-]+\.webp$/)
    expect(existsSync(file(hero.src)), hero.src).toBe(true)
    keys.push(hero.key)
  }
  return [
    { check: () => expectHero('A lighthouse at dusk') },
    { edit: () => writeFileSync(manifest, HERO.replaceAll('at dusk', 'at dawn')), check: () => expectHero('A lighthouse at dawn') },
    {
      edit: () => writeFileSync(join(root, 'src/reference.png'), blue),
      check: async () => {
        await expectHero('A lighthouse at dawn')
        // a new reference image is a new image: every key differs
        expect(new Set(keys).size).toBe(3)
      },
    },
  ]
}

describe('vite build --watch', () => {
  it('rebuilds when a manifest or its reference image changes, with the new image', async () => {
    const { build } = await import('vite')
    const { default: imagegen } = await import('../src/vite')
    const root = viteProject()
    const outDir = join(root, 'dist')
    const steps = await session(root, async () => {
      await import(`${pathToFileURL(join(outDir, 'main.js')).href}?load=${++loads}`)
      return { hero: (globalThis as any).__imagegen.hero, file: (src) => join(outDir, src.slice('/'.length)) }
    })
    const watcher = await build({
      root,
      configFile: false,
      logLevel: 'silent',
      plugins: [imagegen({ root, provider: 'placeholder' })],
      build: { outDir, watch: {}, assetsInlineLimit: 0, rollupOptions: { input: join(root, 'src/main.js'), output: { entryFileNames: 'main.js' } } },
    })
    await runWatch(watcher as unknown as Watcher, steps)
  })
})

describe('rollup -w', () => {
  it('rebuilds when a manifest or its reference image changes, with the new image', async () => {
    const { watch } = await import('rollup')
    const { default: imagegen } = await import('../src/rollup')
    const root = viteProject()
    const outDir = join(root, 'dist')
    const steps = await session(root, async () => {
      await import(`${pathToFileURL(join(outDir, 'main.js')).href}?load=${++loads}`)
      return { hero: (globalThis as any).__imagegen.hero, file: (src) => fileURLToPath(src) }
    })
    const watcher = watch({
      input: join(root, 'src/main.js'),
      plugins: [imagegen({ root, provider: 'placeholder' })],
      output: { dir: outDir, format: 'es', entryFileNames: 'main.js', assetFileNames: 'assets/[name]-[hash][extname]' },
    })
    await runWatch(watcher as unknown as Watcher, steps)
  })
})
