/**
 * Helpers for the framework harness (frameworks.test.ts): running commands, serving a build,
 * reading the `<img>` tags of server-rendered HTML and judging each image URL as a user's
 * browser would meet it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { extname, join, normalize, sep } from 'node:path'

// ---------------------------------------------------------------------------------------------
// Commands

/**
 * The environment for the apps' own commands: the harness's, without what vitest sets
 * (NODE_ENV=test would make every framework build in test mode), without what npm sets for
 * the repository's own scripts, and without any Atlas key — the apps use the local
 * `placeholder` provider and must build with no key at all.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(NODE_ENV|VITEST.*|TEST|INIT_CWD|ATLASCLOUD_.*|npm_lifecycle_.*|npm_package_.*|npm_config_(prefix|global|local_prefix))$/.test(name)) continue
    env[name] = value
  }
  return {
    ...env,
    CI: 'true',
    NEXT_TELEMETRY_DISABLED: '1',
    NUXT_TELEMETRY_DISABLED: '1',
    ASTRO_TELEMETRY_DISABLED: '1',
    ASTRO_DISABLE_UPDATE_CHECK: 'true', // `astro dev` asks the registry for a newer Astro (also off under CI)
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    ...extra,
  }
}

export interface RunResult {
  code: number | null
  output: string
  ms: number
}

/** Runs a command to its end, collecting stdout and stderr together; never throws. */
export function run(command: string, args: string[], cwd: string, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: options.env ?? childEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    const timer = setTimeout(() => {
      output += `\n[harness] ${command} ${args.join(' ')} killed after ${options.timeoutMs} ms\n`
      killGroup(child)
    }, options.timeoutMs ?? 600_000)
    child.on('error', (error) => (output += `\n[harness] ${error.message}\n`))
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output, ms: Date.now() - started })
    })
  })
}

/**
 * A command's output for a failure message: all of it when short, else where the first error
 * is said (npm prints its usage text after it) and the last lines.
 */
export function tail(output: string, lines = 40): string {
  const all = output.trimEnd().split('\n')
  if (all.length <= lines) return all.join('\n')
  const first = all.findIndex((line) => /\b(error|ERR!|failed)\b|✘|⨯/i.test(line))
  const end = all.slice(-lines)
  if (first === -1 || first >= all.length - lines) return ['…', ...end].join('\n')
  return [...(first > 0 ? ['…'] : []), ...all.slice(first, first + 15), '…', ...end].join('\n')
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM') {
  if (child.pid === undefined || child.exitCode !== null) return
  try {
    process.kill(-child.pid, signal) // the whole group: `next start` and the like spawn workers
  } catch {
    child.kill(signal)
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

/** A port that was free a moment ago, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface Running {
  origin: string
  /** What the server printed so far. */
  output(): string
  stop(): Promise<void>
}

/**
 * Starts an app's production server (the command gets PORT, HOST and the like) and waits
 * until it answers HTTP on 127.0.0.1.
 */
export async function startServer(command: string, args: string[], cwd: string, port: number, timeoutMs = 60_000): Promise<Running> {
  const env = childEnv({ PORT: String(port), HOST: '127.0.0.1', HOSTNAME: '127.0.0.1', NITRO_PORT: String(port), NITRO_HOST: '127.0.0.1', NODE_ENV: 'production' })
  const { child, running } = spawnServer(command, args, cwd, env, port)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server (${command} ${args.join(' ')}) exited with code ${child.exitCode} before answering:\n${tail(running.output())}`)
    try {
      await fetch(`${running.origin}/`, { signal: AbortSignal.timeout(5_000) })
      return running
    } catch {
      if (Date.now() > deadline) {
        await running.stop()
        throw new Error(`the server (${command} ${args.join(' ')}) did not answer on ${running.origin} within ${timeoutMs} ms:\n${tail(running.output())}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
}

export interface DevServer extends Running {
  /** After `stop()`: whether the server ended on SIGTERM within the grace time, or had to be killed. */
  ended(): 'on SIGTERM' | 'killed (SIGKILL)' | 'running'
  /** How long until `GET /` first answered 200, in ms. */
  readyMs: number
}

/**
 * Starts a framework's dev server (no NODE_ENV; the command gets PORT, HOST and the like) and
 * waits until `GET /` answers 200 — a dev server compiles the page on the first request, and
 * some (Nuxt) answer with a loading page first. Stops it, process group and all, on failure.
 */
export async function startDevServer(command: string, args: string[], cwd: string, port: number, timeoutMs = 240_000): Promise<DevServer> {
  const env = childEnv({ PORT: String(port), HOST: '127.0.0.1', HOSTNAME: '127.0.0.1', NUXT_PORT: String(port), NUXT_HOST: '127.0.0.1' })
  const started = Date.now()
  const { child, running, killed } = spawnServer(command, args, cwd, env, port, 10_000)
  const deadline = started + timeoutMs
  let last = 'no answer yet'
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await running.stop()
      throw new Error(`the dev server (${command} ${args.join(' ')}) exited (${child.exitCode ?? child.signalCode}) before answering:\n${tail(running.output())}`)
    }
    try {
      const response = await fetch(`${running.origin}/`, { signal: AbortSignal.timeout(Math.max(1_000, deadline - Date.now())) })
      const body = await response.text()
      if (response.status === 200) return { ...running, readyMs: Date.now() - started, ended: () => (child.exitCode === null && child.signalCode === null ? 'running' : killed() ? 'killed (SIGKILL)' : 'on SIGTERM') }
      last = `answered ${response.status}: ${body.slice(0, 300)}`
    } catch (error) {
      last = (error as Error).message
    }
    if (Date.now() > deadline) {
      await running.stop()
      throw new Error(`the dev server (${command} ${args.join(' ')}) did not answer GET / with 200 on ${running.origin} within ${timeoutMs} ms (last: ${last}):\n${tail(running.output())}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** Spawns a server in its own process group; `stop()` sends the group SIGTERM, then SIGKILL after `graceMs`. */
function spawnServer(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, port: number, graceMs = 5_000) {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  let killed = false
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  child.on('error', (error) => (output += `\n[harness] ${error.message}\n`))
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  const stop = async () => {
    killGroup(child)
    // The group, not the leader: a leader that exited may have left workers holding its output open.
    const killGroupNow = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // none left
      }
    }
    const timer = setTimeout(() => {
      killed = true
      killGroupNow()
    }, graceMs)
    await exited
    clearTimeout(timer)
    killGroupNow() // workers that outlived the leader go too
  }
  const running: Running = { origin: `http://127.0.0.1:${port}`, output: () => output, stop }
  return { child, running, killed: () => killed }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain',
  '.woff2': 'font/woff2',
}

/**
 * Serves a static build the way a plain static host does: the file at the path, `index.html`
 * for a folder, `<path>.html` for an extensionless path; the content type from the extension.
 */
export async function serveStatic(dir: string): Promise<Running> {
  const server: Server = createHttpServer((req, res) => {
    let path: string
    try {
      path = normalize(decodeURIComponent(new URL(req.url!, 'http://x').pathname))
    } catch {
      return res.writeHead(400).end('bad request')
    }
    const base = join(dir, path)
    if (base !== dir && !base.startsWith(dir + sep)) return res.writeHead(403).end('forbidden')
    const candidates = [base, join(base, 'index.html'), `${base}.html`]
    const file = candidates.find((f) => existsSync(f) && statSync(f).isFile())
    if (!file) return res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found')
    res.writeHead(200, { 'Content-Type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream' })
    createReadStream(file).pipe(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  return {
    origin,
    output: () => '',
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

// ---------------------------------------------------------------------------------------------
// HTML

const ENTITIES: Record<string, string> = { amp: '&', quot: '"', apos: "'", lt: '<', gt: '>', nbsp: '\u00a0' }

export function decodeEntities(value: string): string {
  return value.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] === '#') return String.fromCodePoint(name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10))
    return ENTITIES[name.toLowerCase()] ?? whole
  })
}

export interface ImageTag {
  tag: 'img' | 'source'
  attrs: Record<string, string>
  /** How messages name it: `<img id="hero">`, else by alt, else by position. */
  label: string
}

/** Every `<img>` and `<source>` of an HTML document, attributes decoded (not for scripts' strings). */
export function imageTags(html: string): ImageTag[] {
  const withoutScripts = html.replace(/<script\b[\s\S]*?<\/script>/gi, '').replace(/<!--[\s\S]*?-->/g, '')
  const tags: ImageTag[] = []
  for (const match of withoutScripts.matchAll(/<(img|source)\b((?:[^>"']|"[^"]*"|'[^']*')*)>/gi)) {
    const attrs: Record<string, string> = {}
    for (const a of match[2]!.matchAll(/([^\s"'=<>`/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
      attrs[a[1]!.toLowerCase()] = decodeEntities(a[2] ?? a[3] ?? a[4] ?? '')
    }
    const tag = match[1]!.toLowerCase() as 'img' | 'source'
    const index = tags.filter((t) => t.tag === tag).length + 1
    const label = attrs.id ? `<${tag} id="${attrs.id}">` : attrs.alt ? `<${tag} alt="${attrs.alt}">` : `<${tag}> #${index}`
    tags.push({ tag, attrs, label })
  }
  return tags
}

export interface Candidate {
  url: string
  descriptor: string
}

/** The candidates of a `srcset`, as the HTML standard splits them (URLs may hold commas). */
export function parseSrcset(srcset: string): Candidate[] {
  const out: Candidate[] = []
  let i = 0
  while (i < srcset.length) {
    while (i < srcset.length && /[\s,]/.test(srcset[i]!)) i++
    if (i >= srcset.length) break
    let url = ''
    while (i < srcset.length && !/\s/.test(srcset[i]!)) url += srcset[i++]
    let descriptor = ''
    if (url.endsWith(',')) url = url.replace(/,+$/, '')
    else {
      let depth = 0
      while (i < srcset.length) {
        const c = srcset[i]!
        if (c === '(') depth++
        else if (c === ')') depth = Math.max(0, depth - 1)
        else if (c === ',' && depth === 0) break
        descriptor += c
        i++
      }
    }
    out.push({ url, descriptor: descriptor.trim() })
  }
  return out
}

/** Every image URL a tag carries: its `src` and each `srcset` candidate. */
export function tagUrls(tag: ImageTag): { where: string; url: string; descriptor?: string }[] {
  const urls: { where: string; url: string; descriptor?: string }[] = []
  if (tag.attrs.src !== undefined) urls.push({ where: 'src', url: tag.attrs.src })
  if (tag.attrs.srcset) for (const c of parseSrcset(tag.attrs.srcset)) urls.push({ where: `srcset candidate "${c.descriptor || '1x'}"`, url: c.url, descriptor: c.descriptor })
  return urls
}

// ---------------------------------------------------------------------------------------------
// URLs

/**
 * What is wrong with an image URL found in a page served at `origin`, before fetching it;
 * `undefined` when it is an http(s) URL of that server or a root-relative one. `paths` are
 * folders (the app's copy, the repository, temp) whose appearance in a URL means the build
 * leaked a filesystem path into it.
 */
export function urlProblem(url: string, origin: string, paths: string[]): string | undefined {
  if (url === '') return 'is empty'
  let decoded = url
  try {
    decoded = decodeURIComponent(url)
  } catch {
    // keep it as it is
  }
  // Also look inside an optimizer's `?url=` parameter (next/image): it must be a URL too.
  if (/^file:/i.test(url)) return 'is a file: URL (a path on the build machine, which no browser loads from an http page)'
  if (/file:/i.test(decoded)) return 'holds a file: URL in its path or query — the build leaked a path on the build machine into it'
  const leaked = paths.find((p) => p.length > 1 && decoded.includes(p))
  if (leaked) return `holds the absolute filesystem path ${leaked} — the build leaked a path on the build machine into it`
  if (/^data:/i.test(url)) return `is a data: URL (${url.length} characters): the image was inlined instead of emitted as a file, and \`src\` must be the emitted file's URL`
  if (/^[a-z]:[\\/]/i.test(url) || url.startsWith('\\')) return 'is a Windows filesystem path, not a URL'
  if (/^\/\//.test(url)) {
    const host = new URL(`http:${url}`).host
    return host === new URL(origin).host ? undefined : `is a protocol-relative URL to ${host}, not the app's own server (${new URL(origin).host})`
  }
  if (/^https?:\/\//i.test(url)) {
    const parsed = new URL(url)
    return parsed.origin === origin ? undefined : `points at ${parsed.origin}, not the app's own server (${origin})`
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return `has the scheme ${url.split(':')[0]}:, not http(s)`
  if (url.startsWith('/')) return /^\/@fs\//.test(url) ? "is a Vite dev-server /@fs/ path, which a production server does not serve" : undefined
  return 'is a relative URL, which resolves against the page path (root-relative or absolute URLs are expected)'
}

/**
 * What is wrong with a blur placeholder shown as an inline `background-image` (the apps'
 * `placeholder`, next/image's `placeholder="blur"`, which wraps `blurDataURL` in an SVG).
 */
export function placeholderProblem(style: string): string | undefined {
  const match = /background-image\s*:\s*url\(\s*(?:"([^"]*)"|'([^']*)'|([^)]*))\s*\)/i.exec(style)
  if (!match) return /background-image/i.test(style) ? `has a background-image that is not a url(): ${style.slice(0, 120)}` : undefined
  const url = (match[1] ?? match[2] ?? match[3] ?? '').trim()
  if (url === '' || url === 'undefined' || url === 'null') return `has an empty blur placeholder (background-image: url("${url}")): the import gave no placeholder`
  if (/^data:image\/svg\+xml/i.test(url)) {
    let svg = url
    try {
      svg = decodeURIComponent(url)
    } catch {
      // keep it as it is
    }
    const href = /<image\b[^>]*\bhref=(?:'([^']*)'|"([^"]*)")/i.exec(svg)
    if (href) {
      const inner = href[1] ?? href[2] ?? ''
      if (!/^data:image\/(webp|png|jpeg|avif|gif);base64,./i.test(inner)) return `has a blur placeholder whose image is ${inner === '' ? 'empty' : `not an image data URL (${inner.slice(0, 40)})`}: next/image got no blurDataURL`
    }
    return undefined
  }
  if (!/^data:image\//i.test(url)) return `has a blur placeholder that is not an image data URL: ${url.slice(0, 60)}`
  return undefined
}

/** A URL as messages show it: data: URLs cut short. */
export const shown = (url: string): string => (/^data:/i.test(url) && url.length > 48 ? `${url.slice(0, 48)}…` : url)

/** Fetches an image URL from the app's server; what is wrong with the answer, if anything. */
export async function fetchProblem(url: string, origin: string): Promise<string | undefined> {
  const absolute = new URL(url, `${origin}/`).href
  let response: Response
  try {
    response = await fetch(absolute, { signal: AbortSignal.timeout(30_000), redirect: 'follow' })
  } catch (error) {
    return `could not be fetched from ${absolute}: ${(error as Error).message}`
  }
  const type = response.headers.get('content-type') ?? '(none)'
  const body = Buffer.from(await response.arrayBuffer())
  if (response.status !== 200) return `answered ${response.status} ${response.statusText} (${type}) from ${absolute}`
  if (!/^image\//i.test(type)) return `answered 200 but with content type ${type}, not an image, from ${absolute}`
  if (body.length === 0) return `answered 200 ${type} with an empty body from ${absolute}`
  if (!imageFormat(body)) return `answered 200 ${type}, but the body is not an image (it starts with ${JSON.stringify(body.subarray(0, 60).toString('latin1'))}) from ${absolute}`
  return undefined
}

/** The image format of a file's bytes, by its signature; `undefined` when it is none of them. */
export function imageFormat(bytes: Uint8Array): string | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'webp'
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png'
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg'
  if (b.length >= 12 && b.toString('latin1', 4, 8) === 'ftyp' && /^avi[fs]$/.test(b.toString('latin1', 8, 12))) return 'avif'
  if (b.length >= 6 && /^GIF8[79]a$/.test(b.toString('latin1', 0, 6))) return 'gif'
  if (/^\s*(<\?xml[^>]*>\s*)?<svg[\s>]/i.test(b.toString('utf8', 0, 512))) return 'svg'
  return undefined
}
