import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import type { CachedImage, ImageCache } from './core/cache'
import { Code } from './core/module-code'

const ROUTE = '@imagegen/'
const FILE = /^[0-9a-f]{64}\.(png|jpg|webp|avif)$/
const TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp', avif: 'image/avif' }

/** The dev server's URL of a cached image: served straight from the cache, not copied. */
export function cacheUrl(base: string, image: CachedImage): Code {
  return new Code(JSON.stringify(`${base.endsWith('/') ? base : `${base}/`}${ROUTE}${image.record.file}`))
}

/** Serves `<base>@imagegen/<key>.<ext>` from the cache folder; only names of that shape. */
export function serveCache(cache: () => ImageCache) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const path = (req.url ?? '').split('?')[0]!
    const at = path.lastIndexOf(`/${ROUTE}`)
    const name = at === -1 ? '' : path.slice(at + ROUTE.length + 1)
    if (!FILE.test(name)) return next()
    const file = join(cache().imagesDir, name)
    stat(file).then(
      (info) => {
        res.writeHead(200, {
          'Content-Type': TYPES[name.split('.').pop()!]!,
          'Content-Length': info.size,
          // Names are content hashes: a name never changes what it shows.
          'Cache-Control': 'public, max-age=31536000, immutable',
        })
        createReadStream(file).pipe(res)
      },
      () => next(),
    )
  }
}
