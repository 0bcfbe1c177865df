import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import type { ViteDevServer } from 'vite'
import type { AssetFile, UrlFor } from './core/context'
import { Code } from './core/module-code'

const ROUTE = '@imagegen/'
const FILE = /^[0-9a-f]{16,64}(-[0-9a-z]+)*\.(png|jpg|webp|avif)$/
const TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp', avif: 'image/avif' }

const withSlash = (base: string) => (base.endsWith('/') ? base : `${base}/`)

/** The dev server's URL of a file (`prefix`: `server.origin` and `base`): served straight from where it is, not copied. */
export function devServerUrl(prefix: string): UrlFor {
  return (file: AssetFile) => new Code(JSON.stringify(`${withSlash(prefix)}${ROUTE}${file.name}`))
}

/** Serves `<base>@imagegen/<key>.<ext>` from the given folders; any other name under the route is a 404. */
export function serveCache(base: string, folders: () => string[]) {
  const route = `${withSlash(base)}${ROUTE}`
  return (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const path = (req.url ?? '').split('?')[0]!
    if (!path.startsWith(route)) return next()
    // Not the app's page: a missing image must not be answered by an SPA fallback.
    const notFound = () => res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found')
    const name = path.slice(route.length)
    if (!FILE.test(name)) return notFound()
    firstExisting(folders().map((dir) => join(dir, name))).then(
      ([file, info]) => {
        res.writeHead(200, {
          'Content-Type': TYPES[name.split('.').pop()!]!,
          'Content-Length': info.size,
          // Names are content hashes: a name never changes what it shows.
          'Cache-Control': 'public, max-age=31536000, immutable',
        })
        // a file removed between the stat and the read (a prune) is a 404, not a crash
        createReadStream(file)
          .on('error', () => (res.headersSent ? res.destroy() : notFound()))
          .pipe(res)
      },
      notFound,
    )
  }
}

async function firstExisting(paths: string[]) {
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined)
    if (info?.isFile()) return [path, info] as const
  }
  throw new Error('not found')
}

/**
 * Reloads a module in every environment that loaded it: its cached code is dropped (so the next
 * request, even with HMR off, gets the new images) and Vite sends the HMR update.
 */
export async function reloadFile(server: ViteDevServer, file: string): Promise<void> {
  for (const environment of Object.values(server.environments)) {
    for (const module of environment.moduleGraph.getModulesByFile(file) ?? []) {
      environment.moduleGraph.invalidateModule(module)
      await environment.reloadModule(module)
    }
  }
}
