import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, normalize, resolve } from 'node:path'
import { createUnplugin, type UnpluginFactory } from 'unplugin'
import { ASSET_FILE, emittedAssetUrl, importedAssetUrl } from './asset-url'
import { ImagegenContext } from './core/context'
import { PREFIX } from './core/errors'
import { MANIFEST_PATTERN } from './core/manifest'
import { devServerUrl, reloadFile, serveCache } from './dev-server'
import { resolveOptions, type Options } from './options'

const PLUGIN_NAME = 'unplugin-imagegen'
/**
 * A manifest's module id is the file and a query, so that it ends in neither `.yaml` (the app's
 * own YAML plugins and loaders) nor an asset extension. webpack and Rspack make it a virtual
 * module named by the encoded id, which must end in `.js` to escape catch-all `asset/resource`
 * rules; in Vite it must not, or the dependency scanner parses the YAML file as JavaScript.
 */
const MODULE_ID = /\.images\.ya?ml(\?imagegen(\.js)?)?$/

interface Resolver {
  resolve(source: string, importer?: string, options?: { skipSelf?: boolean }): Promise<{ id: string } | null>
}

export const unpluginFactory: UnpluginFactory<Options | undefined> = (options = {}, meta) => {
  let ctx: ImagegenContext | undefined
  let command: 'build' | 'serve' = 'build'
  /** The dev server's URL prefix: `server.origin` (backend integration) and `base`. */
  let base = '/'
  let devServer: { reload(file: string): Promise<void> } | undefined
  let log = { info: (message: string) => console.log(message), warn: (message: string) => console.warn(message) }
  /** Made once, from the bundler's root (the project root is searched from there). */
  const context = (bundlerRoot?: string) =>
    (ctx ??= new ImagegenContext(resolveOptions(options, { from: bundlerRoot }), { info: (m) => log.info(m), warn: (m) => log.warn(`${PREFIX} ${m}`) }))
  // Vite builds import each image: Vite's asset handling gives `base`, `renderBuiltUrl`, SSR URLs and library mode.
  const emits = meta.framework === 'rollup' || meta.framework === 'rolldown'
  const rollupLike = emits || meta.framework === 'vite'
  const moduleQuery = meta.framework === 'webpack' || meta.framework === 'rspack' ? '?imagegen.js' : '?imagegen'
  /** Files a manifest module may import: only these are handed to the bundler's asset handling. */
  const isImageAsset = (path: string) =>
    ASSET_FILE.test(path) && (path.startsWith(context().project.cache.imagesDir) || path.startsWith(context().options.derivedCacheDir))
  const assetRule = { test: isImageAsset, type: 'asset/resource' } as const

  return {
    name: PLUGIN_NAME,
    enforce: 'pre',
    async buildStart() {
      const c = context()
      c.startBuild(command)
      await c.preflight()
    },
    resolveId: {
      filter: { id: MANIFEST_PATTERN },
      async handler(source, importer) {
        // Vite and Rollup resolve aliases and root-relative URLs; the others give paths relative to the importer.
        const file = rollupLike
          ? (await (this as unknown as Resolver).resolve(source, importer, { skipSelf: true }))?.id
          : resolve(importer ? dirname(importer) : '', source)
        return file && context().project.isManifest(file) && existsSync(file) ? `${file}${moduleQuery}` : undefined
      },
    },
    load: {
      filter: { id: MODULE_ID },
      async handler(id) {
        const c = context()
        const file = id.split('?')[0]!
        if (!c.project.isManifest(file)) return undefined
        // Only a Vite dev server can reload the module when images arrive; elsewhere they are waited for.
        const devServing = command === 'serve' && meta.framework === 'vite'
        const loaded = await c.load(file, { background: devServing })
        // Watch mode sees the manifest only when it is added (the id is not its path); a Vite dev
        // server watches it already, and would record the module as its own importer (see project.ts).
        for (const dependency of devServing ? loaded.dependencies : [file, ...loaded.dependencies]) this.addWatchFile(dependency)
        void loaded.generating
          ?.then((arrived) => (arrived ? devServer?.reload(file) : undefined))
          .catch((error: Error) => log.warn(`${PREFIX} could not reload ${c.project.display(file)}: ${error.message}`))
        return c.moduleCode(loaded, devServing ? devServerUrl(base) : emits ? emittedAssetUrl(this) : importedAssetUrl)
      },
    },
    buildEnd() {
      context().finishBuild()
    },
    vite: {
      config(config) {
        // A generated image is an emitted file (as `src` promises) unless the app sets its own limit; library mode inlines regardless.
        if (config.build?.assetsInlineLimit === undefined) return { build: { assetsInlineLimit: (file: string) => (isImageAsset(normalize(file)) ? false : undefined) } }
      },
      configResolved(config) {
        command = config.command
        base = `${config.server.origin?.replace(/\/$/, '') ?? ''}${config.base}`
        log = { info: (m) => config.logger.info(m), warn: (m) => config.logger.warn(m) }
        context(config.root)
      },
      configureServer(server) {
        devServer = { reload: (file) => reloadFile(server, file) }
        // A closing dev server stops its background predictions; paid ones stay journaled.
        server.httpServer?.once('close', () => context().abort())
        server.middlewares.use(serveCache(server.config.base, () => [context().options.derivedCacheDir, context().project.cache.imagesDir]))
      },
    },
    webpack(compiler) {
      context(compiler.context)
      compiler.options.module.rules.push(assetRule)
      compiler.hooks.watchRun.tap(PLUGIN_NAME, () => void (command = 'serve'))
    },
    rspack(compiler) {
      context(compiler.context)
      compiler.options.module.rules.push(assetRule)
      compiler.hooks.watchRun.tap(PLUGIN_NAME, () => void (command = 'serve'))
    },
    esbuild: {
      setup(build) {
        context(build.initialOptions.absWorkingDir)
        // Resolved here, not by esbuild: its resolver caches folder listings during a build,
        // and derived files may appear in a folder it has already read.
        build.onResolve({ filter: ASSET_FILE }, (args) => (isImageAsset(args.path) ? { path: args.path } : undefined))
        // esbuild's `file` loader copies the image under a content hash and gives its URL through `publicPath`.
        build.onLoad({ filter: ASSET_FILE }, async (args) =>
          isImageAsset(args.path) ? { contents: await readFile(args.path), loader: 'file' } : undefined,
        )
      },
    },
  }
}

export const unplugin = /* #__PURE__ */ createUnplugin(unpluginFactory)
export default unplugin

// The small documented API (see the README's "API" section); nothing else is public.
export type { Options } from './options'
export type { GeneratedImage } from './core/module-code'
export type { ImageSpec } from './core/schema'
export type { Manifest, ManifestEntry } from './core/manifest'
export type { ErrorCode, SourceLocation } from './core/errors'
export type { GenerationJob, GenerationResult, Provider, ProviderRequest, ResumeState, UploadMemo, UploadRecord } from './providers/types'
export { ImagegenError, ManifestError, ProviderError } from './core/errors'
export { parseManifest } from './core/manifest'
export { keySpec } from './core/key'
export { openProject, type Project, type ReadManifest } from './api'
export { createAtlasProvider } from './providers/atlas'
export { createPlaceholderProvider } from './providers/placeholder'
