/**
 * The gallery of a Vite dev server at `<base>__imagegen/`: every manifest of the project with its images, variants made
 * in the background and a seed pinned from the page (as `imagegen variants` / `imagegen pick` do, with the same core).
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { basename, join } from 'node:path'
import { writeFileAtomic } from './core/atomic'
import { DamagedEntryError } from './core/cache'
import type { KeyedEntry } from './core/entries'
import { ImagegenError } from './core/errors'
import { forceName, missingImagesError, type PlannedImage } from './core/plan'
import type { Project } from './core/project'
import { GenerationError } from './core/scheduler'
import { candidatesOf, DEFAULT_VARIANTS, MAX_SEED, MAX_VARIANTS, pinSeed } from './core/variants'
import { galleryPage } from './gallery-page'

const ROUTE = '__imagegen/'
const MAX_BODY = 16 * 1024

/** `cached` (with `src`), `generating`, `failed` (with `error`) or `missing` (with `reason`). */
export interface ImageState {
  key: string
  state: 'cached' | 'generating' | 'failed' | 'missing'
  /** The image's URL on this server (`<base>@imagegen/<file>`), when cached. */
  src?: string
  error?: string
  reason?: string
}

/** `GET api/manifests`: one entry of a manifest. */
export interface GalleryEntry extends ImageState {
  /** The entry's name; undefined in a single-image manifest. */
  name?: string
  /** `<manifest>#<entry>` (the manifest alone for a single image), as `imagegen pick` takes it. */
  target: string
  prompt: string
  /** Pixels. */
  width: number
  height: number
  seed: number
  /** Whether the manifest leaves the seed out (it is derived from the spec). */
  seedDerived: boolean
  /** Candidates 2…N (candidate 1 is the entry itself): those cached, or all of them once variants were asked for here. */
  candidates: (ImageState & { number: number; seed: number })[]
  /** The last variants run asked for here: `running`, and why it failed or was refused (`error`). */
  variants?: { count: number; running: boolean; error?: string }
}

/** `GET api/manifests`: `busy` while a variants run is going (the page polls then). */
export interface GalleryState {
  /** Why images cannot be generated now (offline, no key); absent when they can. */
  cannotGenerate?: string
  maxNewImages: number
  busy: boolean
  manifests: { file: string; error?: string; entries: GalleryEntry[] }[]
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * The gallery's routes under `<base>__imagegen/` (`base`: Vite's `base`, ending in `/`), as Connect middleware:
 * - `GET` (the folder): the page;
 * - `GET api/manifests`: a `GalleryState`;
 * - `POST api/variants` `{ file, entry?, count? }` (`file` as the gallery names it, relative to the root; `count` 1–64,
 *   default 4): starts making the entry's candidates in the background and answers `{ started: n }` (new images), or 409
 *   `{ error }` when they cannot be made (offline, no key) or the bill guard refuses — before anything is submitted;
 * - `POST api/pick` `{ file, entry?, seed }`: writes `seed:` into the entry as `imagegen pick` does (atomically), 200
 *   `{ previousSeed, seed, changed }`.
 * Requests from another site (`Sec-Fetch-Site`, `Origin`) get 403; an action that is not a JSON POST 405/415; a file that
 * is not a manifest the project finds under its root, or an unknown entry, 404; a bad body 400. `plugin.takeBudget` is the dev
 * server's bill guard (`maxNewImages` over its whole life, shared with the plugin's own images): it throws a `BudgetError`
 * before anything is submitted; `plugin.failureOf` gives the message of an image the plugin failed to make in the
 * background, shown as `failed`. `close()` stops the runs.
 */
export function createGallery(
  project: Project,
  base: string,
  plugin: { takeBudget(images: readonly PlannedImage[]): void; failureOf(key: string): string | undefined },
) {
  const route = `${base}${ROUTE}`
  const aborter = new AbortController()
  /** Keys this gallery is making, and the messages of those that failed. */
  const generating = new Set<string>()
  const failures = new Map<string, string>()
  /** By target: the last variants run. */
  const runs = new Map<string, { count: number; running: boolean; error?: string }>()
  const scheduler = project.scheduler({
    signal: aborter.signal,
    onEvent: (event) => {
      if (event.type === 'generated') generating.delete(event.image.key)
      if (event.type === 'failed') {
        generating.delete(event.image.key)
        failures.set(event.image.key, event.error.message)
      }
    },
  })

  const stateOf = (key: string): ImageState => {
    try {
      const cached = project.cache.lookup(key)
      if (cached) return { key, state: 'cached', src: `${base}@imagegen/${basename(cached.path)}` }
    } catch (error) {
      if (!(error instanceof DamagedEntryError)) throw error
      return { key, state: 'failed', error: error.message }
    }
    // a lock held on the key: the plugin, a CLI run or this gallery is making it
    if (generating.has(key) || existsSync(join(project.cache.locksDir, `${key}.lock`))) return { key, state: 'generating' }
    const error = failures.get(key) ?? plugin.failureOf(key)
    if (error) return { key, state: 'failed', error }
    return { key, state: 'missing', reason: project.options.cannotGenerate ?? 'not in the cache: it is generated when a page imports the manifest' }
  }

  const galleryEntry = (entry: KeyedEntry): GalleryEntry => {
    const target = forceName(entry)
    const run = runs.get(target)
    const candidates = candidatesOf(entry, run?.count ?? DEFAULT_VARIANTS)
      .slice(1)
      .map(({ number, seed, entry: { key } }) => ({ number, seed, ...stateOf(key) }))
      .filter((candidate) => run || candidate.state === 'cached')
    const { prompt, width, height, seed } = entry.pixels
    return { name: entry.name, target, prompt, width, height, seed, seedDerived: entry.spec.seed === undefined, ...stateOf(entry.key), candidates, variants: run }
  }

  const state = async (): Promise<GalleryState> => {
    const manifests = await Promise.all(
      (await project.findManifests()).map(async (file) => {
        try {
          return { file: project.display(file), entries: (await project.read(file)).entries.map(galleryEntry) }
        } catch (error) {
          return { file: project.display(file), error: (error as Error).message, entries: [] }
        }
      }),
    )
    const { cannotGenerate, maxNewImages } = project.options
    return { cannotGenerate, maxNewImages, busy: [...runs.values()].some((run) => run.running), manifests }
  }

  /** The entry a request names: `file` must be a manifest the project finds under its root (so `isManifest` accepts it). */
  const namedEntry = async (body: Record<string, unknown>): Promise<{ file: string; entry: KeyedEntry }> => {
    const file = (await project.findManifests()).find((found) => project.display(found) === body.file)
    if (!file) throw new HttpError(404, `\`${String(body.file)}\` is not a manifest of this project`)
    const entry = (await project.read(file)).entries.find((e) => e.name === (body.entry ?? undefined))
    if (!entry) throw new HttpError(404, `\`${String(body.file)}\` has no entry \`${String(body.entry)}\``)
    return { file, entry }
  }

  const variants = async (body: Record<string, unknown>) => {
    const count = body.count ?? DEFAULT_VARIANTS
    if (!(Number.isInteger(count) && (count as number) >= 1 && (count as number) <= MAX_VARIANTS)) throw new HttpError(400, `\`count\` must be a whole number from 1 to ${MAX_VARIANTS}`)
    const { entry } = await namedEntry(body)
    const target = forceName(entry)
    if (runs.get(target)?.running) throw new HttpError(409, `variants of ${target} are being made`)
    const run = { count: count as number, running: false, error: undefined as string | undefined }
    runs.set(target, run)
    const { missing } = project.plan(candidatesOf(entry, run.count).map((candidate) => candidate.entry))
    if (missing.length === 0) return { started: 0 }
    try {
      if (project.options.cannotGenerate) throw missingImagesError(missing.flatMap((image) => image.entries), project.options.cannotGenerate)
      plugin.takeBudget(missing)
    } catch (error) {
      run.error = (error as ImagegenError).message
      throw new HttpError(409, run.error)
    }
    run.running = true
    for (const image of missing) {
      failures.delete(image.key)
      generating.add(image.key)
    }
    scheduler
      .generate(missing)
      .catch((error: Error) => {
        run.error = error.message
        // not a run that failed image by image (its failures are noted): nothing of it is being made any more
        if (!(error instanceof GenerationError)) for (const image of missing) generating.delete(image.key)
      })
      .finally(() => (run.running = false))
    return { started: missing.length }
  }

  const pick = async (body: Record<string, unknown>) => {
    const { seed } = body
    if (!(Number.isInteger(seed) && (seed as number) >= 0 && (seed as number) <= MAX_SEED)) throw new HttpError(400, `\`seed\` must be a whole number from 0 to ${MAX_SEED}`)
    const { file, entry } = await namedEntry(body)
    const text = await readFile(file, 'utf8')
    const edited = pinSeed(text, entry.name, seed as number)
    if (edited !== text) await writeFileAtomic(file, edited)
    return { previousSeed: entry.pixels.seed, seed, changed: edited !== text }
  }

  const middleware = async (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => {
    const path = (req.url ?? '').split('?')[0]!
    if (`${path}/` === route) return res.writeHead(302, { Location: route }).end()
    if (!path.startsWith(route)) return next()
    const json = (status: number, data: unknown) =>
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' }).end(JSON.stringify(data))
    const action = path.slice(route.length)
    try {
      if (action === '') {
        return res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(galleryPage())
      }
      if (crossSite(req)) throw new HttpError(403, 'the gallery API answers only its own page')
      if (action === 'api/manifests' && req.method === 'GET') return json(200, await state())
      const act = action === 'api/variants' ? variants : action === 'api/pick' ? pick : undefined
      if (!act) throw new HttpError(404, 'not found')
      if (req.method !== 'POST') throw new HttpError(405, 'POST only')
      if (!req.headers['content-type']?.startsWith('application/json')) throw new HttpError(415, 'a JSON body is expected')
      json(200, await act(await readBody(req)))
    } catch (error) {
      if (error instanceof HttpError) return json(error.status, { error: error.message })
      if (error instanceof ImagegenError) return json(500, { error: error.message })
      next(error)
    }
  }

  return { middleware, close: () => aborter.abort(new ImagegenError('STOPPED', 'the dev server stopped')) }
}

/** Whether a request comes from a page of another site: `Sec-Fetch-Site` other than same-origin, or an `Origin` not this host. */
function crossSite(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin') return true
  const origin = req.headers.origin
  if (origin === undefined) return false
  try {
    return new URL(origin).host !== req.headers.host
  } catch {
    return true
  }
}

/** A JSON object body of at most 16 KB, else a 400. */
async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = ''
  req.setEncoding('utf8')
  for await (const chunk of req) {
    text += chunk
    if (text.length > MAX_BODY) throw new HttpError(400, 'the body is too large')
  }
  try {
    const body: unknown = JSON.parse(text)
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) return body as Record<string, unknown>
  } catch {}
  throw new HttpError(400, 'the body must be a JSON object')
}

/**
 * The gallery's URL: `server.origin` (else the address the server listens on, `localhost` for every interface) and
 * `base`, then `__imagegen/`.
 */
export function galleryUrl(server: { config: { base: string; server: { origin?: string; https?: unknown } }; httpServer: { address(): unknown } | null }): string {
  const { origin, https } = server.config.server
  if (origin) return `${origin.replace(/\/$/, '')}${server.config.base}${ROUTE}`
  const address = server.httpServer?.address() as { address: string; family: string; port: number } | null
  const host = !address || address.address === '::' || address.address === '0.0.0.0' ? 'localhost' : address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${https ? 'https' : 'http'}://${host}${address ? `:${address.port}` : ''}${server.config.base}${ROUTE}`
}
