// The app's server: renders the page with the SSR entry into index.html and serves the client.
//   npm run build && npm start   production: the SSR bundle in dist/server, files from dist/client
//   npm run dev                  development (`node server.js --dev`): Vite in middleware mode, the
//                                SSR entry loaded with `ssrLoadModule`, as in Vite's SSR guide
// PORT and HOST from the environment.
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:http'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const dev = process.argv.includes('--dev')
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.svg': 'image/svg+xml',
  '.webp': 'image/webp', '.avif': 'image/avif', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.ico': 'image/x-icon',
}

/** `(req, res) => void`: answers a request the page does not (a file, or a 404). */
let files
/** The page's HTML for a URL. */
let page

if (dev) {
  const { createServer: createViteServer } = await import('vite')
  const vite = await createViteServer({ server: { middlewareMode: true }, appType: 'custom' })
  const template = readFileSync(fileURLToPath(new URL('./index.html', import.meta.url)), 'utf8')
  files = (req, res) => vite.middlewares(req, res, () => res.writeHead(404).end('not found'))
  page = async (url) => {
    const { render } = await vite.ssrLoadModule('/src/entry-server.js')
    return (await vite.transformIndexHtml(url, template)).replace('<!--app-html-->', render())
  }
  // Closing the Vite server ends its plugins' work (their buildEnd runs) before the process ends.
  const stop = () => vite.close().finally(() => process.exit(0))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
} else {
  const root = fileURLToPath(new URL('./dist/client', import.meta.url))
  const template = readFileSync(join(root, 'index.html'), 'utf8')
  const { render } = await import('./dist/server/entry-server.js')
  files = (req, res) => {
    const file = join(root, normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)))
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end('not found')
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' })
    createReadStream(file).pipe(res)
  }
  page = async () => template.replace('<!--app-html-->', render())
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname
  if (path !== '/' && path !== '/index.html') return files(req, res)
  try {
    res.writeHead(200, { 'Content-Type': TYPES['.html'] }).end(await page(req.url))
  } catch (error) {
    console.error(error)
    res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(error?.stack ?? error))
  }
})
const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
server.listen(port, host, () => console.log(`listening on http://${host}:${port}/${dev ? ' (dev)' : ''}`))
