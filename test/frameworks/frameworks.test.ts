/**
 * Do generated images work in real framework apps, as a user would see them?
 *
 *   npx vitest run --config vitest.frameworks.config.ts        (4–6 minutes with a warm npm cache)
 *   IMAGEGEN_FRAMEWORKS=astro,next npx vitest run --config vitest.frameworks.config.ts
 *
 * The package is built and packed once (`npm run build`, `npm pack`). Each app under examples/
 * (vite-ssr, astro, sveltekit, nuxt, next) is copied to a temp folder outside the repository,
 * installed from its own lock file (`npm ci`) plus the tarball (`npm install --no-save`), built
 * with its own scripts, and served as in production: its own server on 127.0.0.1 (SSR apps) or
 * a plain static server (static output); then, after all its builds, its dev server(s) with every
 * image already in the app's cache (`imagegen generate`). Then, for each build and dev server:
 *
 * - the server-rendered HTML: every `<img>`/`<source>` `src` and `srcset` candidate is an
 *   http(s) URL of the app's own server or a root-relative URL — never `file:`, never a
 *   filesystem path — and answers 200 with an image content type;
 * - headless Chromium: after hydration every `<img>` is complete and decoded at the intrinsic
 *   width of its current source, and no request failed.
 *
 * See test/frameworks/README.md. Set IMAGEGEN_FRAMEWORKS_KEEP=1 to keep the temp folder.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { browserProblems, htmlProblems } from './checks'
import { freePort, run, serveStatic, startDevServer, startServer, tail, type DevServer, type Running } from './harness'

const REPO = resolve(import.meta.dirname, '../..')
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const ENABLED = process.env.IMAGEGEN_FRAMEWORKS_HARNESS === '1'
const ONLY = process.env.IMAGEGEN_FRAMEWORKS?.split(',').map((s) => s.trim()).filter(Boolean)

interface Target {
  /** How results name it. */
  name: string
  /** The npm script that builds it. */
  script: string
  /** Static output folder to serve, or the production server's command (gets PORT/HOST). */
  serve: { static: string } | { command: string[] }
  /** How many `<img>` the page renders on the server. */
  images: number
  /** How many `imagegen: N images — …` summary lines the build prints: one per build command, however many internal builds. */
  summaries: number
}

/** A dev server of the app, started after its builds (see "dev" below). */
interface DevTarget {
  name: string
  /** The command, run in the app's folder (`$PORT` replaced; it also gets PORT, HOST and the like); serves on 127.0.0.1. */
  command: string[]
  /** How many `<img>` the page renders on the server. */
  images: number
}

interface Example {
  dir: string
  targets: Target[]
  dev: DevTarget[]
}

const EXAMPLES: Example[] = [
  {
    dir: 'vite-ssr',
    targets: [{ name: 'vite-ssr', script: 'build', serve: { command: ['node', 'server.js'] }, images: 3, summaries: 2 }],
    // Its own server with Vite in middleware mode and the SSR entry through ssrLoadModule (`npm run dev`).
    dev: [{ name: 'vite-ssr (dev: server.js --dev)', command: ['node', 'server.js', '--dev'], images: 3 }],
  },
  {
    dir: 'astro',
    targets: [{ name: 'astro (static)', script: 'build', serve: { static: 'dist' }, images: 4, summaries: 1 }],
    dev: [{ name: 'astro (dev)', command: ['node', 'node_modules/astro/astro.js', 'dev', '--host', '127.0.0.1', '--port', '$PORT'], images: 4 }],
  },
  {
    dir: 'sveltekit',
    targets: [
      // SvelteKit's second (server) build loads vite.config afresh: a second plugin instance, nested in the first build, which prints the one line.
      { name: 'sveltekit (adapter-static)', script: 'build', serve: { static: 'build' }, images: 3, summaries: 1 },
      { name: 'sveltekit (adapter-node)', script: 'build:node', serve: { command: ['node', 'build-node'] }, images: 3, summaries: 1 },
    ],
    dev: [{ name: 'sveltekit (dev: vite dev)', command: ['node', 'node_modules/vite/bin/vite.js', 'dev', '--host', '127.0.0.1', '--port', '$PORT', '--strictPort'], images: 3 }],
  },
  {
    dir: 'nuxt',
    targets: [{ name: 'nuxt', script: 'build', serve: { command: ['node', '.output/server/index.mjs'] }, images: 3, summaries: 1 }],
    dev: [{ name: 'nuxt (dev)', command: ['node', 'node_modules/nuxt/bin/nuxt.mjs', 'dev', '--host', '127.0.0.1', '--port', '$PORT'], images: 3 }],
  },
  {
    dir: 'next',
    targets: [
      { name: 'next (turbopack)', script: 'build', serve: { command: ['node', 'node_modules/next/dist/bin/next', 'start', '-H', '127.0.0.1', '-p', '$PORT'] }, images: 3, summaries: 1 },
      { name: 'next (webpack)', script: 'build:webpack', serve: { command: ['node', 'node_modules/next/dist/bin/next', 'start', '-H', '127.0.0.1', '-p', '$PORT'] }, images: 3, summaries: 1 },
    ],
    dev: [
      { name: 'next (dev, turbopack)', command: ['node', 'node_modules/next/dist/bin/next', 'dev', '-H', '127.0.0.1', '-p', '$PORT'], images: 3 },
      { name: 'next (dev --webpack)', command: ['node', 'node_modules/next/dist/bin/next', 'dev', '--webpack', '-H', '127.0.0.1', '-p', '$PORT'], images: 3 },
    ],
  },
].filter((e) => !ONLY || ONLY.includes(e.dir))

/** Never copied into the temp app: installs, build output, caches. */
const NOT_COPIED = new Set(['node_modules', 'dist', 'build', 'build-node', '.next', '.nuxt', '.output', '.svelte-kit', '.astro', '.imagegen', 'out', '.data', '.nitro', '.cache'])

const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error']

interface Timing {
  target: string
  install?: number
  /** The build; for a dev server, until `GET /` first answered 200. */
  build?: number
  checks?: number
}
const timings: Timing[] = []

const SUMMARY_LINE = /imagegen: \d+ images? — \d+ cached, \d+ generated/
/** What each dev server printed: recorded and shown at the end, not asserted (the summary at shutdown is changing). */
interface DevSummary {
  target: string
  lines: string[]
  ended?: string
}
const devSummaries: DevSummary[] = []
const seconds = (ms?: number) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(0)} s`)

// Under the repository's main vitest config (`npm test`) none of this is registered; see the end.
if (ENABLED) describe('framework apps', () => {
  let work: string
  let tarball: string
  let browser: Browser | undefined

  /** The server-rendered HTML of `origin`: every <img> src and srcset candidate an image the app itself serves. */
  async function checkHtml(target: Pick<Target, 'name' | 'images'>, origin: string, app: string, timing: Timing): Promise<void> {
    const started = Date.now()
    const response = await fetch(`${origin}/`, { signal: AbortSignal.timeout(120_000) })
    const html = await response.text()
    expect(response.status, `[${target.name}] GET / answered ${response.status}:\n${html.slice(0, 2000)}`).toBe(200)
    const problems = await htmlProblems({ origin, images: target.images, leakable: [app, work, REPO] }, html)
    timing.checks = (timing.checks ?? 0) + Date.now() - started
    expect(problems, `[${target.name}] ${problems.length} problem(s) in the server-rendered HTML of ${origin}/:\n  - ${problems.join('\n  - ')}\n`).toEqual([])
  }

  /** The page in Chromium after hydration: every <img> complete, at the intrinsic width of its source, no request failed. */
  async function checkBrowser(browser: Browser, target: Pick<Target, 'name' | 'images'>, origin: string, app: string, timing: Timing): Promise<void> {
    const started = Date.now()
    const { problems, context } = await browserProblems(browser, { origin, images: target.images, leakable: [app, work, REPO] })
    timing.checks = (timing.checks ?? 0) + Date.now() - started
    const more = context.length ? `\n  (browser console: ${context.slice(0, 10).join(' | ')})` : ''
    expect(problems, `[${target.name}] ${problems.length} problem(s) in Chromium at ${origin}/:\n  - ${problems.join('\n  - ')}${more}\n`).toEqual([])
  }

  // A failure here is kept and thrown by every app's first test: a throwing beforeAll would
  // leave the tests merely skipped, and the closing line would count no failure.
  let setupError: Error | undefined

  beforeAll(async () => {
    work = realpathSync(mkdtempSync(join(tmpdir(), 'imagegen-frameworks-')))
    try {
      // Built into a folder of its own (the package's `tsup` config, another output folder) and packed from
      // there: other work in the repository may be rebuilding (and cleaning) dist/ at the same moment.
      const stage = join(work, 'package')
      mkdirSync(stage)
      const built = await run(join(REPO, 'node_modules/.bin/tsup'), ['--out-dir', join(stage, 'dist')], REPO, { timeoutMs: 300_000 })
      if (built.code !== 0) throw new Error(`the package's build (tsup) failed in the repository:\n${tail(built.output)}`)
      const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { files?: string[]; exports: unknown; bin?: Record<string, string> }
      // What npm would pack from the repository: package.json, README, LICENSE and `files` (dist/ is the one just built).
      for (const file of ['package.json', 'README.md', 'LICENSE', ...(manifest.files ?? []).filter((f) => f.replace(/^\.\/|\/$/g, '') !== 'dist')]) {
        if (existsSync(join(REPO, file))) cpSync(join(REPO, file), join(stage, file), { recursive: true })
      }
      const targets = [...JSON.stringify(manifest.exports).matchAll(/:"(\.\/[^"]+)"/g)].map((m) => m[1]!).concat(Object.values(manifest.bin ?? {}))
      // `npm pack` runs the package's own `prepack` (scripts/cjs-entries.mjs: the CJS entries), which imports the
      // built entries: the repository's scripts/ and node_modules (a link, never packed) are there for it.
      if (existsSync(join(REPO, 'scripts'))) cpSync(join(REPO, 'scripts'), join(stage, 'scripts'), { recursive: true })
      symlinkSync(join(REPO, 'node_modules'), join(stage, 'node_modules'), 'dir')
      const packed = await run('npm', ['pack', '--pack-destination', work, '--json', '--loglevel=error'], stage, { timeoutMs: 120_000 })
      if (packed.code !== 0) throw new Error(`npm pack failed:\n${tail(packed.output)}`)
      const name = (JSON.parse(packed.output.slice(packed.output.search(/^\[/m))) as { filename: string }[])[0]!.filename
      tarball = join(work, basename(name))
      if (!existsSync(tarball)) throw new Error(`npm pack printed ${name}, but ${tarball} is not there`)
      const absent = targets.filter((file) => !existsSync(join(stage, file)))
      if (absent.length) throw new Error(`the build wrote no ${absent.join(', ')} (named by package.json's exports and bin):\n${tail(built.output)}`)
      if (existsSync(CHROMIUM)) browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
      else console.warn(`browser checks skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`)
    } catch (error) {
      setupError = error as Error
    }
  }, 600_000)

  afterAll(async () => {
    await browser?.close()
    if (timings.length) {
      const rows = timings.map((t) => `  ${t.target.padEnd(28)} install ${seconds(t.install).padStart(5)}   build ${seconds(t.build).padStart(5)}   checks ${seconds(t.checks).padStart(5)}`)
      console.log(`framework harness timings (work folder ${work}; for dev servers "build" is until GET / first answered 200):\n${rows.join('\n')}`)
    }
    if (devSummaries.length) {
      const rows = devSummaries.map((d) => `  ${d.target.padEnd(28)} ${d.lines.length} line(s), stopped ${d.ended ?? '(never started)'}${d.lines.map((l) => `\n      ${l}`).join('')}`)
      console.log(`imagegen summary lines printed by each dev server from start to shutdown (not asserted):\n${rows.join('\n')}`)
    }
    if (work && process.env.IMAGEGEN_FRAMEWORKS_KEEP !== '1') rmSync(work, { recursive: true, force: true })
  })

  for (const example of EXAMPLES) {
    describe(example.dir, () => {
      let installed: Promise<{ dir: string; ms: number }> | undefined

      /** Copies the app out of the repository and installs it, once for all its targets. */
      const install = () =>
        (installed ??= (async () => {
          if (setupError) throw new Error(`not built: the package could not be packed. ${setupError.message}`)
          const started = Date.now()
          const source = join(REPO, 'examples', example.dir)
          const dir = join(work, example.dir)
          cpSync(source, dir, { recursive: true, filter: (path) => !NOT_COPIED.has(basename(path)) || path === source })
          if (!existsSync(join(dir, 'package-lock.json'))) throw new Error(`examples/${example.dir} has no package-lock.json to \`npm ci\` from`)
          const ci = await run('npm', ['ci', ...NPM_QUIET], dir, { timeoutMs: 600_000 })
          if (ci.code !== 0) throw new Error(`[${example.dir}] npm ci failed:\n${tail(ci.output)}`)
          const add = await run('npm', ['install', '--no-save', ...NPM_QUIET, tarball], dir, { timeoutMs: 600_000 })
          if (add.code !== 0) throw new Error(`[${example.dir}] npm install --no-save ${basename(tarball)} failed:\n${tail(add.output)}`)
          return { dir, ms: Date.now() - started }
        })())

      for (const target of example.targets) {
        describe(target.name, () => {
          const timing: Timing = { target: target.name }
          timings.push(timing)
          let app: string | undefined
          let server: Running | undefined
          let notServed: string | undefined = 'not built yet'
          let buildOutput: string | undefined

          afterAll(async () => {
            await server?.stop()
          })

          it('builds and serves', async () => {
            const first = !installed
            notServed = 'the package could not be packed, or the app not installed (see "builds and serves")'
            const { dir, ms } = await install()
            if (first) timing.install = ms
            app = dir
            const build = await run('npm', ['run', target.script], dir, { timeoutMs: 900_000 })
            timing.build = build.ms
            buildOutput = build.output
            if (build.code !== 0) {
              notServed = `the build (npm run ${target.script}) failed`
              throw new Error(`[${target.name}] npm run ${target.script} failed (exit ${build.code}):\n${tail(build.output)}`)
            }
            try {
              if ('static' in target.serve) {
                const root = join(dir, target.serve.static)
                if (!existsSync(root)) throw new Error(`[${target.name}] the build printed no error but wrote no ${target.serve.static}/ folder to serve`)
                server = await serveStatic(root)
              } else {
                const port = await freePort()
                const [command, ...args] = target.serve.command.map((a) => a.replace('$PORT', String(port)))
                server = await startServer(command!, args, dir, port)
              }
              notServed = undefined
            } catch (error) {
              notServed = 'the production server did not start'
              throw error
            }
          })

          it('prints one summary line per build command, not one per internal (client, SSR) build', (ctx) => {
            if (buildOutput === undefined) return ctx.skip('not checked: the app was not built')
            const lines = buildOutput.split('\n').filter((line) => SUMMARY_LINE.test(line))
            expect(lines, `[${target.name}] summary lines:\n${lines.join('\n')}`).toHaveLength(target.summaries)
          })

          it('server-rendered HTML: every <img> src and srcset candidate is an image URL the app itself serves (and blur placeholders are there)', async (ctx) => {
            if (notServed || !server || !app) return ctx.skip(`not checked: ${notServed}`)
            await checkHtml(target, server.origin, app, timing)
          })

          it('in Chromium, after hydration: every <img> is complete, decoded at the intrinsic width of its current source, and no request failed', async (ctx) => {
            if (notServed || !server || !app) return ctx.skip(`not checked: ${notServed}`)
            if (!browser) return ctx.skip(`no Chromium at ${CHROMIUM}`)
            await checkBrowser(browser, target, server.origin, app, timing)
          })
        })
      }

      // Dev servers, after every build of the app: the images are in the app's cache by then.
      describe('dev', () => {
        /** Why the dev servers are not checked, if they are not. */
        let notReady: string | undefined = 'not prepared yet'
        let app: string | undefined

        it('has every image in its cache before a dev server starts (`imagegen generate`)', async () => {
          notReady = 'the app could not be installed, or its images not generated (see "has every image in its cache")'
          const { dir } = await install()
          app = dir
          // The builds above have made every image; `generate` makes any they did not (a build that failed),
          // so that the dev servers below always start with a full cache and never generate in the background.
          const generated = await run('node', ['node_modules/unplugin-imagegen/dist/cli.js', 'generate'], dir, { timeoutMs: 300_000 })
          expect(generated.code, `[${example.dir}] imagegen generate failed (exit ${generated.code}):\n${tail(generated.output)}`).toBe(0)
          const status = await run('node', ['node_modules/unplugin-imagegen/dist/cli.js', 'status'], dir, { timeoutMs: 120_000 })
          expect(status.code, `[${example.dir}] imagegen status after generate (exit ${status.code}):\n${tail(status.output)}`).toBe(0)
          notReady = undefined
        })

        for (const target of example.dev) {
          describe(target.name, () => {
            const timing: Timing = { target: target.name }
            timings.push(timing)
            let server: DevServer | undefined
            let notServed: string | undefined = 'not started yet'
            /** The summary lines the server printed from its start to its shutdown (recorded, not asserted). */
            const summary: DevSummary = { target: target.name, lines: [] }
            devSummaries.push(summary)

            afterAll(async () => {
              // Stopped even when a check failed (or the test timed out): the whole process group, SIGTERM then SIGKILL.
              if (!server) return
              const output = () => server!.output()
              await server.stop()
              summary.ended = server.ended()
              summary.lines = output().split('\n').filter((line) => SUMMARY_LINE.test(line)).map((line) => line.trim())
            })

            it('starts and answers GET / with 200', async (ctx) => {
              if (notReady || !app) return ctx.skip(`not started: ${notReady}`)
              const port = await freePort()
              const [command, ...args] = target.command.map((a) => a.replace('$PORT', String(port)))
              notServed = 'the dev server did not start'
              server = await startDevServer(command!, args, app, port)
              timing.build = server.readyMs
              notServed = undefined
            })

            it('server-rendered HTML: every <img> src and srcset candidate answers 200 with an image from the dev server', async (ctx) => {
              if (notServed || !server || !app) return ctx.skip(`not checked: ${notServed}`)
              await checkHtml(target, server.origin, app, timing)
            })

            it('in Chromium, after hydration: every <img> is complete, decoded at the intrinsic width of its current source, and no request failed', async (ctx) => {
              if (notServed || !server || !app) return ctx.skip(`not checked: ${notServed}`)
              if (!browser) return ctx.skip(`no Chromium at ${CHROMIUM}`)
              await checkBrowser(browser, target, server.origin, app, timing)
            })
          })
        }
      })
    })
  }
})

// Under the repository's main vitest config (`npm test`) this file only says how to run it.
else {
  describe('framework apps', () => {
    it.skip('run with: npx vitest run --config vitest.frameworks.config.ts', () => {})
  })
}
