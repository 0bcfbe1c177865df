import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import vm from 'node:vm'
import type { Options } from '../../src/options'
import { listFiles } from './temp'
import { viteBuild } from './vite-project'

export const BUNDLERS = ['vite', 'rollup', 'webpack', 'rspack', 'esbuild'] as const
export type Bundler = (typeof BUNDLERS)[number]

export interface BundleResult {
  outDir: string
  files: string[]
  /** What `src/main.js` put on `globalThis.__imagegen`. */
  values: Record<string, any>
  /** The public path URLs were built with (Rollup's are relative to the chunk, so resolved here). */
  publicPath: string
}

/** The public path every bundler is given, where it has one. */
export const PUBLIC_PATH = '/static/'
/** For webpack's `publicPath: 'auto'`: where the page says the script came from. */
export const SCRIPT_URL = 'https://example.test/deep/path/main.js'

let imports = 0

/** A real build of `<root>/src/main.js` with the bundler's JavaScript API, into `<root>/dist-<bundler>`. */
export async function bundle(bundler: Bundler, root: string, options: Options, extra: { publicPath?: string } = {}): Promise<BundleResult> {
  const outDir = join(root, `dist-${bundler}`)
  const entry = join(root, 'src/main.js')
  const publicPath = extra.publicPath ?? PUBLIC_PATH
  const plugin = { ...options, root }
  switch (bundler) {
    case 'vite': {
      const result = await viteBuild(root, plugin, { base: publicPath, build: { outDir, emptyOutDir: true, rollupOptions: { input: entry } } })
      return { outDir, files: result.files, values: result.values, publicPath }
    }
    case 'rollup': {
      const { rollup } = await import('rollup')
      const { default: imagegen } = await import('../../src/rollup')
      const build = await rollup({ input: entry, plugins: [imagegen(plugin)] })
      await build.write({ dir: outDir, format: 'es', entryFileNames: 'main.js', assetFileNames: 'assets/[name]-[hash][extname]' })
      await build.close()
      delete (globalThis as any).__imagegen
      await import(`${pathToFileURL(join(outDir, 'main.js')).href}?build=${++imports}`)
      return { outDir, files: listFiles(outDir), values: (globalThis as any).__imagegen, publicPath: pathToFileURL(`${outDir}/`).href }
    }
    case 'webpack':
    case 'rspack': {
      const compile = bundler === 'webpack' ? (await import('webpack')).default : (await import('@rspack/core')).rspack
      const { default: imagegen } = bundler === 'webpack' ? await import('../../src/webpack') : await import('../../src/rspack')
      const config = {
        mode: 'production' as const,
        context: root,
        entry,
        target: 'web',
        devtool: false as const,
        output: { path: outDir, filename: 'main.js', publicPath, clean: true },
        plugins: [imagegen(plugin)],
      }
      await new Promise<void>((resolve, reject) => {
        ;(compile as any)(config, (error: Error | null, stats: any) => {
          if (error) return reject(error)
          if (stats.hasErrors()) return reject(new Error(stats.toJson({ all: false, errors: true }).errors.map((e: any) => e.message).join('\n')))
          resolve()
        })
      })
      return { outDir, files: listFiles(outDir), values: runScript(join(outDir, 'main.js')), publicPath: publicPath === 'auto' ? new URL('.', SCRIPT_URL).href : publicPath }
    }
    case 'esbuild': {
      const esbuild = await import('esbuild')
      const { default: imagegen } = await import('../../src/esbuild')
      await esbuild.build({ entryPoints: [entry], bundle: true, outdir: outDir, publicPath, format: 'iife', absWorkingDir: root, logLevel: 'silent', plugins: [imagegen(plugin)] })
      return { outDir, files: listFiles(outDir), values: runScript(join(outDir, 'main.js')), publicPath }
    }
  }
}

/** Runs a browser script in a fresh context that knows only where it was loaded from. */
function runScript(file: string): Record<string, any> {
  const context: Record<string, any> = { document: { currentScript: { src: SCRIPT_URL, tagName: 'SCRIPT' }, baseURI: SCRIPT_URL }, location: new URL(SCRIPT_URL), URL }
  context.globalThis = context
  context.self = context
  context.window = context
  vm.runInNewContext(readFileSync(file, 'utf8'), context)
  return context.__imagegen
}
