import { dirname, relative } from 'node:path'
import { importedAssetUrl } from './asset-url'
import { ImagegenContext } from './core/context'
import { PREFIX } from './core/errors'
import { missingImagesError } from './core/plan'
import { resolveOptions, type Options } from './options'

/** `next dev` sets NODE_ENV to development; a build may run with any other. */
const dev = process.env.NODE_ENV === 'development'
/** One per process (Turbopack runs loaders in a pool of Node processes). */
let context: ImagegenContext | undefined
function start(options: Options, from?: string): ImagegenContext {
  const c = new ImagegenContext(resolveOptions(options, { from }), { info: console.log, warn: (m) => console.warn(`${PREFIX} ${m}`) })
  if (dev) c.startBuild('serve')
  return c
}

type LoaderContext = { resourcePath: string; rootContext?: string; getOptions(): Options; addDependency(file: string): void; async(): (error: Error | null, code?: string) => void }

/** `withImagegen`'s Turbopack loader: a manifest becomes its module, each image imported by a relative path. */
export default function imagegenLoader(this: LoaderContext): void {
  const done = this.async()
  const run = async () => {
    const c = (context ??= start(this.getOptions(), this.rootContext))
    const loaded = await c.load(this.resourcePath)
    for (const file of loaded.dependencies) this.addDependency(file)
    const missing = loaded.entries.filter((entry) => !loaded.images.has(entry.key))
    if (!dev && missing.length > 0) throw missingImagesError(missing, c.options.cannotGenerate ?? 'they failed')
    // Turbopack reads `/…` as a path on the server, not a file.
    const near = (path: string) => `./${relative(dirname(this.resourcePath), path)}`
    return c.moduleCode(loaded, (file, imports) => importedAssetUrl({ ...file, path: near(file.path) }, imports))
  }
  run().then((code) => done(null, code), (error: Error) => done(error))
}
