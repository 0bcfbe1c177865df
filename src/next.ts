import { fileURLToPath } from 'node:url'
import unplugin from './plugin'
import { ImagegenContext } from './core/context'
import { ImagegenError } from './core/errors'
import { resolveOptions, type Options } from './options'

/** What `withImagegen` reads of a Next config, typed loosely: Next's and webpack's types are not dependencies. */
type NextConfig = { webpack?: ((config: any, context: any) => any) | null; turbopack?: { rules?: object }; generateBuildId?: () => any }
const isNextImageLoader = (use: any) => (use?.loader ?? use) === 'next-image-loader'
const isNextImageRule = (r: any): boolean =>
  isNextImageLoader(r) || [r?.use ?? []].flat().some(isNextImageLoader) || (r?.oneOf ?? []).some(isNextImageRule)

function isJson(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return typeof v !== 'function'
  return (Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype) && Object.values(v).every(isJson)
}

/**
 * A Next.js config that builds `*.images.yaml` imports with Turbopack (a loader) and webpack (the
 * plugin). Each image is imported by path and emitted by Next's own static image handling under
 * `/_next/static/media/`, so an import gives what `next/image` expects.
 */
export function withImagegen<T extends object>(config: T = {} as T, options: Options = {}): T {
  const nextConfig = config as NextConfig
  const { apiKey, ...rest } = options
  if (!isJson(rest)) {
    throw new ImagegenError('OPTIONS', 'withImagegen: Turbopack hands options to loaders as JSON, so a custom `provider` object or a RegExp ' +
      '`include`/`exclude` cannot be used; use glob strings, or add `unplugin-imagegen/webpack` in `webpack()` and build with `next build --webpack`')
  }
  // Next writes its config (loader options included) into `.next/`: the key travels by the environment.
  if (apiKey) process.env.ATLASCLOUD_API_KEY = apiKey
  const rule = { loaders: [{ loader: fileURLToPath(new URL('./next-loader.cjs', import.meta.url)), options: rest }], as: '*.js' }
  return {
    ...config,
    turbopack: { ...nextConfig.turbopack, rules: { ...nextConfig.turbopack?.rules, '*.images.yaml': rule, '*.images.yml': rule } },
    // Turbopack's `next build` reads a folder once and never sees files made later: every image is
    // generated and derived before it starts, from the one async hook Next calls before.
    async generateBuildId() {
      if (process.env.TURBOPACK) {
        const c = new ImagegenContext(resolveOptions(rest))
        await Promise.all((await c.project.findManifests()).map(async (file) => c.moduleCode(await c.load(file))))
        c.finishBuild()
      }
      return (await nextConfig.generateBuildId?.()) ?? null
    },
    webpack(webpackConfig: any, context: any) {
      const out = nextConfig.webpack ? nextConfig.webpack(webpackConfig, context) : webpackConfig
      const plugin = unplugin.webpack(options)
      // Next's image loader makes each imported image `export default { src, width, height, blurDataURL… }`
      // and emits it; an `asset/resource` rule on top would emit that JS as the image. So Next's rule alone.
      out.plugins.push(!out.module.rules.some(isNextImageRule) ? plugin : { apply(compiler: any) {
        const before = new Set(compiler.options.module.rules)
        plugin.apply(compiler)
        compiler.options.module.rules = compiler.options.module.rules.filter((r: any) => before.has(r) || r.type !== 'asset/resource')
      } })
      return out
    },
  } as T
}
export default withImagegen
