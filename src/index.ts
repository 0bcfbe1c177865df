import { createUnplugin, type UnpluginFactory } from 'unplugin'
import { ImagegenContext } from './core/context'
import { MANIFEST_PATTERN } from './core/manifest'
import { resolveOptions, type Options } from './options'
import { cacheUrl, serveCache } from './dev-server'
import { emitAsset } from './emit'

export const PLUGIN_NAME = 'unplugin-imagegen'

export const unpluginFactory: UnpluginFactory<Options | undefined> = (options = {}) => {
  let ctx: ImagegenContext | undefined
  let command: 'build' | 'serve' = 'build'
  let base = '/'
  let log = { info: (message: string) => console.log(message), warn: (message: string) => console.warn(message) }
  const context = (root?: string) =>
    (ctx ??= new ImagegenContext(resolveOptions(options, { root }), { info: (m) => log.info(m), warn: (m) => log.warn(m) }))

  return {
    name: PLUGIN_NAME,
    enforce: 'pre',
    async buildStart() {
      const c = context()
      c.startBuild(command)
      await c.preflight()
    },
    load: {
      filter: { id: MANIFEST_PATTERN },
      async handler(id) {
        const c = context()
        const loaded = await c.load(id)
        for (const file of loaded.dependencies) this.addWatchFile(file)
        return c.moduleCode(loaded, (image) => (command === 'serve' ? cacheUrl(base, image) : emitAsset(this, image)))
      },
    },
    buildEnd() {
      if (command === 'build') context().finishBuild()
    },
    vite: {
      configResolved(config) {
        command = config.command
        base = config.base
        log = { info: (m) => config.logger.info(m), warn: (m) => config.logger.warn(m) }
        context(config.root)
      },
      configureServer(server) {
        server.middlewares.use(serveCache(() => context().cache))
      },
    },
  }
}

export const unplugin = /* #__PURE__ */ createUnplugin(unpluginFactory)
export default unplugin
export type { Options } from './options'
export type { GeneratedImage } from './core/module-code'
export * from './api'
