import { readFile } from 'node:fs/promises'
import type { AssetFile, UrlFor } from './core/context'
import { Code } from './core/module-code'

interface RollupLikeContext {
  emitFile(file: { type: 'asset'; name: string; source: Uint8Array }): string
}

/**
 * Plain Rollup (and Rolldown) builds: the file is emitted through `emitFile`, and its URL is the
 * bundler's own `import.meta.ROLLUP_FILE_URL_*`, which follows the output options and `resolveFileUrl`.
 */
export function emittedAssetUrl(context: unknown): UrlFor {
  return async (file: AssetFile) => {
    const ref = (context as RollupLikeContext).emitFile({ type: 'asset', name: file.name, source: await readFile(file.path) })
    return new Code(`import.meta.ROLLUP_FILE_URL_${ref}`)
  }
}

/**
 * Vite, webpack, Rspack and esbuild: the module imports the file, and the bundler's own asset
 * handling emits it under a content hash and gives its URL — Vite's asset plugin (`base`,
 * `renderBuiltUrl`, SSR, inlining, library mode), asset modules (`output.publicPath`), esbuild's
 * `file` loader (`publicPath`).
 */
export const importedAssetUrl: UrlFor = (file, imports) => imports.add(file.path.split('\\').join('/'))

/** Files the bundler must treat as assets when a manifest module imports them. */
export const ASSET_FILE = /\.(png|jpe?g|webp|avif)$/
