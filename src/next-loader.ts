import { dirname, relative } from 'node:path'
import { ImagegenContext } from './core/context'
import { missingImagesError } from './core/plan'
import { resolveOptions, type Options } from './options'

/** `next dev` sets NODE_ENV to development; a build may run with any other. */
const dev = process.env.NODE_ENV === 'development'
/** One per process (Turbopack runs loaders in a pool of Node processes). */
let context: ImagegenContext | undefined

type LoaderContext = { resourcePath: string; rootContext?: string; getOptions(): Options; addDependency(file: string): void }

/** `withImagegen`'s Turbopack loader (loader-runner awaits its promise): a manifest becomes its module, each image imported by a relative path. */
export default async function imagegenLoader(this: LoaderContext): Promise<string> {
  if (!context) {
    context = new ImagegenContext(resolveOptions(this.getOptions(), { from: this.rootContext }))
    if (dev) context.startBuild('serve')
  }
  const loaded = await context.load(this.resourcePath)
  for (const file of loaded.dependencies) this.addDependency(file)
  const missing = loaded.entries.filter((entry) => !loaded.images.has(entry.key))
  if (!dev && missing.length > 0) throw missingImagesError(missing, context.options.cannotGenerate ?? 'they failed')
  // Turbopack reads `/…` as a path on the server, not a file.
  return context.moduleCode(loaded, (file, imports) => imports.add(`./${relative(dirname(this.resourcePath), file.path)}`))
}
