import { readFile } from 'node:fs/promises'
import type { AssetFile, UrlFor } from './core/context'
import { Code } from './core/module-code'

interface RollupLikeContext {
  emitFile(file: { type: 'asset'; name: string; source: Uint8Array }): string
}

/**
 * Rollup and Vite builds: the file is emitted through `emitFile`, and its URL is the
 * bundler's own `import.meta.ROLLUP_FILE_URL_*`, which follows Vite's `base` and Rollup's output options.
 */
export function emittedAssetUrl(context: unknown): UrlFor {
  return async (file: AssetFile) => {
    const ref = (context as RollupLikeContext).emitFile({ type: 'asset', name: file.name, source: await readFile(file.path) })
    return new Code(`import.meta.ROLLUP_FILE_URL_${ref}`)
  }
}

/**
 * webpack, Rspack and esbuild: the module imports the file, and the bundler's own asset
 * handling (asset modules; esbuild's `file` loader) emits it under a content hash and gives
 * its URL through `output.publicPath` / `publicPath`. `emitFile` returns no reference there.
 */
export const importedAssetUrl: UrlFor = (file, imports) => imports.add(file.path.split('\\').join('/'))

/** Files the bundler must treat as assets when a manifest module imports them. */
export const ASSET_FILE = /\.(png|jpe?g|webp|avif)$/
