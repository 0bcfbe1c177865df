// One `vite build` of a bench site, in its own process.
// argv: <root> <plugin|static|imagetools|imagetools-shared-sharp> [plugin options as JSON]
// `imagetools-shared-sharp`: vite-imagetools, but on the plugin's copy of sharp.
// Prints BENCH_RESULT { processMs, buildMs, cpuMs, maxRSS, emitted, emittedBytes, nestedSharp }: processMs counts from this
// process's start, so loading Vite and the plugin is part of it, as it is for `vite build`.
import { readdirSync, statSync } from 'node:fs'
import { createRequire, register } from 'node:module'
import { join } from 'node:path'

const [root, kind, optionsJson = '{}'] = process.argv.slice(2)
const options = JSON.parse(optionsJson)
const { build } = await import('vite')
let plugins = []
if (kind === 'plugin') {
  const { default: imagegen } = await import('unplugin-imagegen/vite')
  plugins = [imagegen({ root, ...options })]
} else if (kind === 'imagetools' || kind === 'imagetools-shared-sharp') {
  if (kind === 'imagetools-shared-sharp') register('./shared-sharp-hooks.mjs', import.meta.url)
  const { imagetools } = await import('vite-imagetools')
  // its default cache folder is relative to the working folder, not to Vite's root
  plugins = [imagetools({ cache: { dir: join(root, 'node_modules/.cache/imagetools') }, ...options })]
}
const outDir = join(root, 'dist')
const started = performance.now()
await build({ root, configFile: false, logLevel: 'error', plugins, build: { outDir, emptyOutDir: true } })
const ended = performance.now()
const images = readdirSync(join(outDir, 'assets')).filter((f) => /\.(webp|png|avif|jpe?g)$/.test(f))
const emittedBytes = images.reduce((sum, f) => sum + statSync(join(outDir, 'assets', f)).size, 0)
// whether vite-imagetools' own sharp (its native binding is loaded through require) was used
const nestedSharp = Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/vite-imagetools/node_modules/'))
const usage = process.resourceUsage()
// CPU time of every thread (libvips' included): less swayed than wall time by other work on a shared machine
const cpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000
const result = { processMs: ended, buildMs: ended - started, cpuMs, maxRSS: usage.maxRSS * 1024, emitted: images.length, emittedBytes, nestedSharp }
process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`, () =>
  process.exit(0),
)
