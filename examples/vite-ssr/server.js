// The production server: renders the page with the SSR bundle into the client's index.html and
// serves the client build. `npm run build && npm start` (PORT and HOST from the environment).
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:http'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('./dist/client', import.meta.url))
const template = readFileSync(join(root, 'index.html'), 'utf8')
const { render } = await import('./dist/server/entry-server.js')
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.svg': 'image/svg+xml',
  '.webp': 'image/webp', '.avif': 'image/avif', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.ico': 'image/x-icon',
}

const server = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname))
  if (path === '/' || path === '/index.html') {
    res.writeHead(200, { 'Content-Type': TYPES['.html'] }).end(template.replace('<!--app-html-->', render()))
    return
  }
  const file = join(root, path)
  if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end('not found')
  res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' })
  createReadStream(file).pipe(res)
})
const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
server.listen(port, host, () => console.log(`listening on http://${host}:${port}/`))
