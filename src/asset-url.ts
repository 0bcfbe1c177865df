import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { dirname, isAbsolute, join, relative } from 'node:path'
import type { UrlFor } from './core/context'
import { Code } from './core/module-code'

/** Files the bundler must treat as assets when a manifest module imports them. */
export const ASSET_FILE = /\.(png|jpe?g|webp|avif)$/

/**
 * Plain Rollup (and Rolldown) builds: the file is emitted through `emitFile`, and its URL is the
 * bundler's own `import.meta.ROLLUP_FILE_URL_*`, which follows the output options and `resolveFileUrl`.
 */
export function emittedAssetUrl(context: unknown): UrlFor {
  const rollup = context as { emitFile(file: { type: 'asset'; name: string; source: Uint8Array }): string }
  return async (file) => {
    const ref = rollup.emitFile({ type: 'asset', name: file.name, source: await readFile(file.path) })
    return new Code(`import.meta.ROLLUP_FILE_URL_${ref}`)
  }
}

/**
 * Vite builds: the file is imported by its path relative to the manifest, which Vite's resolver takes as it is. An absolute
 * path is tried first as a URL under the root and in `public/` (a dozen failed lookups per image, ~0.1 ms each).
 */
export function importedFromManifest(manifest: string): UrlFor {
  const from = dirname(manifest)
  return (file, imports) => {
    const path = relative(from, file.path)
    // another drive (Windows): only the absolute path reaches it
    return imports.add(isAbsolute(path) ? file.path : /^\.\.([\\/]|$)/.test(path) ? path : `./${path}`)
  }
}

const ROUTE = '@imagegen/'
const FILE = /^[0-9a-f]{16,64}(-[0-9a-z]+)*\.(png|jpg|webp|avif)$/

/** A Vite dev server's URL of a file (`prefix`: `server.origin` and `base`, which Vite ends with `/`): served where it is, not copied. */
export function devServerUrl(prefix: string): UrlFor {
  return (file) => new Code(JSON.stringify(`${prefix}${ROUTE}${file.name}`))
}

/** Serves `<base>@imagegen/<key>.<ext>` from the given folders; any other name under the route is a 404. */
export function serveCache(base: string, folders: () => string[]) {
  const route = `${base}${ROUTE}`
  return async (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const path = (req.url ?? '').split('?')[0]!
    if (!path.startsWith(route)) return next()
    // Not the app's page: a missing image must not be answered by an SPA fallback.
    const notFound = () => res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found')
    const name = path.slice(route.length)
    if (!FILE.test(name)) return notFound()
    for (const file of folders().map((dir) => join(dir, name))) {
      const info = await stat(file).catch(() => undefined)
      if (!info?.isFile()) continue
      res.writeHead(200, {
        'Content-Type': `image/${name.split('.').pop()!.replace('jpg', 'jpeg')}`,
        'Content-Length': info.size,
        // Names are content hashes: a name never changes what it shows.
        'Cache-Control': 'public, max-age=31536000, immutable',
      })
      // a file removed between the stat and the read (a prune) is a 404, not a crash
      createReadStream(file)
        .on('error', () => (res.headersSent ? res.destroy() : notFound()))
        .pipe(res)
      return
    }
    notFound()
  }
}
