import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, normalize, resolve } from 'node:path'
import { createUnplugin, type RspackCompiler, type UnpluginFactory, type WebpackCompiler } from 'unplugin'
import { ASSET_FILE, devServerUrl, emittedAssetUrl, importedFromManifest, serveCache } from './asset-url'
import { ImagegenContext, type ContextLog } from './core/context'
import { PREFIX } from './core/errors'
import { MANIFEST_PATTERN } from './core/manifest'
import { resolveOptions, type Options } from './options'

const PLUGIN_NAME = 'unplugin-imagegen'
/**
 * A manifest's module id is the file and a query, so that it ends in neither `.yaml` (the app's
 * own YAML plugins and loaders) nor an asset extension. webpack and Rspack make it a virtual
 * module named by the encoded id, which must end in `.js` to escape catch-all `asset/resource`
 * rules; in Vite it must not, or the dependency scanner parses the YAML file as JavaScript.
 */
const MODULE_ID = /\.images\.ya?ml(\?imagegen(\.js)?)?$/

type Resolver = { resolve(source: string, importer?: string, options?: { skipSelf?: boolean }): Promise<{ id: string } | null> }

export const unpluginFactory: UnpluginFactory<Options | undefined> = (options = {}, meta) => {
  let ctx: ImagegenContext | undefined
  let command: 'build' | 'serve' = 'build'
  /** The dev server's URL prefix: `server.origin` (backend integration) and `base`. */
  let base = '/'
  let reload: ((file: string) => Promise<void>) | undefined
  let log: ContextLog | undefined
  /** Made once, from the bundler's root (the project root is searched from there). */
  const context = (bundlerRoot?: string) => (ctx ??= new ImagegenContext(resolveOptions(options, { from: bundlerRoot }), log))
  const emits = meta.framework === 'rollup' || meta.framework === 'rolldown'
  const rollupLike = emits || meta.framework === 'vite'
  const moduleQuery = meta.framework === 'webpack' || meta.framework === 'rspack' ? '?imagegen.js' : '?imagegen'
  const isImageAsset = (path: string) =>
    ASSET_FILE.test(path) && (path.startsWith(context().project.cache.imagesDir) || path.startsWith(context().options.derivedCacheDir))
  const webpackLike = (compiler: WebpackCompiler | RspackCompiler) => {
    context(compiler.context)
    compiler.options.module.rules.push({ test: isImageAsset, type: 'asset/resource' })
    compiler.hooks.watchRun.tap(PLUGIN_NAME, () => void (command = 'serve'))
  }

  return {
    name: PLUGIN_NAME,
    enforce: 'pre',
    buildStart() {
      context().startBuild(command)
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
          ?.then((arrived) => (arrived ? reload?.(file) : undefined))
          .catch((error: Error) => c.log.warn(`could not reload ${c.project.display(file)}: ${error.message}`))
        // Otherwise (Vite builds too) each file is imported: Vite's asset handling gives `base`, `renderBuiltUrl`, SSR URLs, library mode.
        return c.moduleCode(loaded, devServing ? devServerUrl(base) : emits ? emittedAssetUrl(this) : meta.framework === 'vite' ? importedFromManifest(file) : undefined)
      },
    },
    buildEnd() {
      context().finishBuild()
    },
    vite: {
      // The summary line waits for closeBundle: SvelteKit runs its client build from the server build's writeBundle.
      buildEnd(error) {
        const c = context()
        if (error) return c.closeBuild(false)
        try {
          c.checkBuild()
        } catch (missing) {
          c.closeBuild(false)
          throw missing
        }
      },
      closeBundle() {
        context().closeBuild()
      },
      config(config) {
        // A generated image is an emitted file (as `src` promises) unless the app sets its own limit; library mode inlines regardless.
        const assetsInlineLimit = (file: string) => (isImageAsset(normalize(file)) ? false : undefined)
        if (config.build?.assetsInlineLimit === undefined) return { build: { assetsInlineLimit } }
      },
      configResolved(config) {
        command = config.command
        base = `${config.server.origin?.replace(/\/$/, '') ?? ''}${config.base}`
        log = { info: (m) => config.logger.info(m), warn: (m) => config.logger.warn(`${PREFIX} ${m}`) }
        context(config.root)
      },
      async configureServer(server) {
        // Drops the module's code in every environment that loaded it (so the next request, even with HMR off,
        // gets the new images), and Vite sends the HMR update.
        reload = async (file) => {
          for (const environment of Object.values(server.environments)) {
            for (const module of environment.moduleGraph.getModulesByFile(file) ?? []) {
              environment.moduleGraph.invalidateModule(module)
              await environment.reloadModule(module)
            }
          }
        }
        // A closing dev server stops its background predictions; paid ones stay journaled.
        server.httpServer?.once('close', () => context().abort())
        server.middlewares.use(serveCache(server.config.base, () => [context().options.derivedCacheDir, context().project.cache.imagesDir]))
        // loaded by dev servers alone: a build never loads the gallery's code
        const { createGallery, galleryUrl } = await import('./gallery')
        const gallery = createGallery(context().project, server.config.base, {
          takeBudget: (images) => context().takeBudget(images),
          failureOf: (key) => context().failureOf(key),
        })
        server.middlewares.use(gallery.middleware)
        server.httpServer?.once('close', gallery.close)
        server.httpServer?.once('listening', () => server.config.logger.info(`  imagegen gallery: ${galleryUrl(server)}`))
      },
    },
    webpack: webpackLike,
    rspack: webpackLike,
    esbuild: {
      setup(build) {
        context(build.initialOptions.absWorkingDir)
        // Resolved here, not by esbuild: its resolver caches folder listings during a build,
        // and derived files may appear in a folder it has already read.
        build.onResolve({ filter: ASSET_FILE }, (args) => (isImageAsset(args.path) ? { path: args.path } : undefined))
        build.onLoad({ filter: ASSET_FILE }, async ({ path }) => (isImageAsset(path) ? { contents: await readFile(path), loader: 'file' } : undefined))
      },
    },
  }
}

export const unplugin = /* #__PURE__ */ createUnplugin(unpluginFactory)
export default unplugin
