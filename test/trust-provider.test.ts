/**
 * Issue 14, the provider's side: a busy service still gives every image for one bill each; a prediction in a
 * terminal or never-seen status frees its image; only 404/410 say a paid prediction is gone; nothing the
 * service sends back (ids, statuses, errors, dates) carries a piece of the key into files, logs or `--json`;
 * and a base URL with credentials is refused before anything is sent.
 */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { run as runCli } from '../src/cli/run'
import { ImageCache } from '../src/core/cache'
import type { KeyedEntry } from '../src/core/entries'
import { seededRandom, type InterceptedRequest } from './atlas-server'
import { atlas, build, collection, entriesOf, failure, job, names, useAtlasServer } from './helpers/atlas'
import { filesContaining, tempDir } from './helpers/temp'
import { viteBuild, writeProject } from './helpers/vite-project'

const server = useAtlasServer()

const isSubmit = (req: InterceptedRequest) => req.method === 'POST' && req.path.endsWith('/generateImage')
const isPoll = (req: InterceptedRequest) => req.method === 'GET' && req.path.includes('/prediction/')

/** A Vite project whose entry imports one manifest, `storm.images.yaml`. */
function project(manifest: string, files: Record<string, string> = {}): string {
  const root = tempDir('imagegen-trust-')
  writeProject(root, { 'src/main.js': "import storm from './storm.images.yaml'\nglobalThis.__imagegen = { storm }\n", 'src/storm.images.yaml': manifest, ...files })
  return root
}

/** `imagegen <args>` in this process, in `root`, with only `env` (and PATH) for its environment. */
async function cli(root: string, args: string[], env: Record<string, string>) {
  const output = { stdout: '', stderr: '' }
  const stderr = Object.assign(new PassThrough(), { isTTY: false, columns: 80 })
  const code = await runCli(args, {
    cwd: root,
    env: { PATH: process.env.PATH, ...env },
    terminal: { out: (line) => void (output.stdout += `${line}\n`), err: (line) => void (output.stderr += `${line}\n`), stderr, interactive: false },
  })
  return { code, output }
}

/** What `promise` was rejected with; a test fails if it resolves. */
const rejection = (promise: Promise<unknown>) => promise.then(() => expect.fail('it succeeded'), (e: unknown) => e as Error)

const journal = (root: string) => (existsSync(join(root, '.imagegen', 'pending')) ? readdirSync(join(root, '.imagegen', 'pending')) : [])

/** Journals `entry` as submitted by an earlier run, as prediction `id`, `ageMs` ago. */
async function journaled(dir: string, entry: KeyedEntry, id: string, ageMs: number): Promise<void> {
  const submittedAt = new Date(Date.now() - ageMs).toISOString()
  await new ImageCache(join(dir, '.imagegen')).writePending({ key: entry.key, provider: 'atlas', submittedAt, state: { id, submittedAt } })
}

describe('a busy service: submits refused with 429 or 503 are sent again, each image billed once', () => {
  it('20 images through 30 % 429s and 20 % bare 503s (no Retry-After): a real vite build caches all 20 from 20 predictions', async () => {
    const random = seededRandom(14)
    const refused = { 429: 0, 503: 0 }
    server.options.intercept = (req) => {
      if (!isSubmit(req)) return 'continue'
      const roll = random()
      if (roll < 0.3) return refused[429]++, { status: 429, body: { code: 429, message: 'rate limit exceeded' } }
      if (roll < 0.5) return refused[503]++, { status: 503, raw: '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>' }
      return 'continue'
    }
    const root = project(collection(names(20, 'storm')))
    // the provider's own retry delays (1-5 ms) through the `provider` option; its retry budgets are the defaults
    const { values } = await viteBuild(root, { provider: atlas(server) })

    expect(refused[503]).toBeGreaterThan(0)
    expect(refused[429]).toBeGreaterThan(0)
    expect(Object.keys(values.storm)).toHaveLength(20)
    expect(readdirSync(join(root, '.imagegen', 'images')).filter((f) => f.endsWith('.json'))).toHaveLength(20)
    expect(server.submits).toHaveLength(20)
    expect([...server.predictionsPerPrompt().values()]).toEqual(Array(20).fill(1))
  })

  it.each([500, 502, 504])('a submit answered %i is not sent again, and the message says it may have been billed', async (status) => {
    server.options.intercept = (req) => (isSubmit(req) ? { status, body: { message: 'upstream trouble' } } : 'continue')
    const error = await failure(atlas(server).generate(job(tempDir())))
    expect(server.submitAttempts).toBe(1)
    expect(error.message).toContain('may have been billed')
  })
})

describe('statuses that end a prediction, and ones never seen before', () => {
  it('`aborted`: one poll, the build fails naming it, the journal goes, and the next build submits afresh', async () => {
    const root = project('prompt: A lighthouse at dusk\nwidth: 64\nheight: 64\n')
    let polls = 0
    server.options.intercept = (req) => (isPoll(req) && ++polls ? { status: 200, body: { code: 200, data: { id: req.path.split('/').pop(), status: 'aborted' } } } : 'continue')
    const error = await rejection(viteBuild(root, { provider: atlas(server) }))
    expect(error.message).toMatch(/prediction `pred_\d+` ended as `aborted`/)
    expect(polls).toBe(1)
    expect(journal(root)).toEqual([])

    server.options.intercept = undefined
    await viteBuild(root, { provider: atlas(server) })
    expect(server.submits).toHaveLength(2)
  })

  it('a status never seen before, polled past the deadline: given up as over, so the next run submits afresh', async () => {
    const root = project('prompt: A lighthouse at dusk\nwidth: 64\nheight: 64\n')
    server.options = { pendingStatus: 'awaiting_moderation', latencyMs: 60_000 }
    const error = await rejection(viteBuild(root, { provider: atlas(server, { timeoutMs: 100 }) }))
    expect(error.message).toMatch(/prediction `pred_\d+` is still `awaiting_moderation`, a status unplugin-imagegen does not know/)
    expect(journal(root)).toEqual([])

    server.options = {}
    await viteBuild(root, { provider: atlas(server) })
    expect(server.submits).toHaveLength(2)
  })

  it('a journaled prediction older than the deadline, in a status never seen before: one poll, given up, then submitted afresh', async () => {
    const dir = tempDir()
    const [entry] = await entriesOf(dir, collection(['resumed']))
    await journaled(dir, entry!, 'pred_old', 60 * 60_000)
    let polls = 0
    server.options.intercept = (req) =>
      req.path.endsWith('/prediction/pred_old') && ++polls ? { status: 200, body: { code: 200, data: { id: 'pred_old', status: 'on_hold' } } } : 'continue'
    const { cache, run } = build(dir, atlas(server, { timeoutMs: 200 }))
    const error = await rejection(run([entry!]))
    expect(error.message).toContain('`pred_old` is still `on_hold`')
    expect(polls).toBe(1)
    expect(await cache.readPending(entry!.key)).toBeUndefined()

    await run([entry!])
    expect(server.submits).toHaveLength(1)
    expect(polls).toBe(1)
  })
})

describe('a resumed prediction is gone only when its poll answers 404 or 410', () => {
  it.each([400, 403, 422])('%i keeps the journal and submits nothing', async (status) => {
    const dir = tempDir()
    const [entry] = await entriesOf(dir, collection(['kept']))
    await journaled(dir, entry!, 'pred_paid', 60 * 60_000)
    server.options.intercept = (req) => (isPoll(req) ? { status, body: { code: status, message: 'bad request' } } : 'continue')
    const { cache, run } = build(dir, atlas(server))
    const error = await rejection(run([entry!]))
    expect(error.message).toContain(`HTTP ${status}`)
    expect(server.submitAttempts).toBe(0)
    expect((await cache.readPending(entry!.key))?.state.id).toBe('pred_paid')
  })

  it.each([404, 410])('%i: gone, so it is submitted afresh, once', async (status) => {
    const dir = tempDir()
    const [entry] = await entriesOf(dir, collection(['gone']))
    await journaled(dir, entry!, 'pred_lost', 60 * 60_000)
    server.options.intercept = (req) => (req.path.endsWith('/prediction/pred_lost') ? { status, body: { code: status, message: 'no such prediction' } } : 'continue')
    const { cache, run } = build(dir, atlas(server))
    await run([entry!])
    expect(server.submits).toHaveLength(1)
    expect((await cache.lookup(entry!.key))?.record.predictionId).not.toBe('pred_lost')
  })
})

/** 33 characters, as the issue's; `CUT` is an echo of it that its sender cut short (32 of them). */
const KEY = 'sk-TRUST-4f1c9e7a2b5d8c3f6a0e9b1d'
const CUT = KEY.slice(0, -1)
/** Every piece of the key of 8 characters: none may be seen anywhere. */
const PIECES = Array.from({ length: KEY.length - 7 }, (_, i) => KEY.slice(i, i + 8))
const piecesIn = (text: string) => PIECES.filter((piece) => text.includes(piece))

describe('strings from the service are scrubbed before they are written or printed', () => {
  const answer = (data: Record<string, unknown>) => ({ status: 200, body: { code: 200, data } })
  /** A service that echoes the key, cut short, in every string it sends: an id, a status, an error, a date. */
  function echoingService() {
    server.options = { apiKey: KEY, latencyMs: 0 }
    server.options.intercept = (req) => {
      const prompt = String(req.body?.prompt ?? '')
      const id = req.path.split('/').pop()!
      if (isSubmit(req)) {
        if (prompt.includes('id echo')) return answer({ id: `pred_${CUT}`, status: 'processing' })
        if (prompt.includes('status echo')) return answer({ id: 'pred_status', status: 'processing' })
        if (prompt.includes('error echo')) return answer({ id: 'pred_error', status: 'processing' })
        return 'continue'
      }
      if (!isPoll(req)) return 'continue'
      if (id === `pred_${CUT}`) return answer({ id, status: 'processing' })
      if (id === 'pred_status') return answer({ id, status: `held for ${CUT}` })
      if (id === 'pred_error') return answer({ id, status: 'failed', error: `refused: authorization was Bearer ${CUT}` })
      return answer({ id, status: 'completed', outputs: [`${server.url}/outputs/${id}.png`], created_at: `2025-01-01T00:00:00Z ${CUT}` })
    }
  }
  const MANIFEST = [
    'images:',
    '  one: { prompt: please id echo, width: 64, height: 64 }',
    '  two: { prompt: please status echo, width: 64, height: 64 }',
    '  three: { prompt: please error echo, width: 64, height: 64 }',
    '  four: { prompt: a date echo, width: 64, height: 64 }',
    '',
  ].join('\n')

  it('a vite build and `imagegen generate --json`: no piece of the key in any file, in stderr or in the JSON', async () => {
    echoingService()
    const root = project(MANIFEST)
    const printed: string[] = []
    const write = process.stderr.write.bind(process.stderr)
    const original = { ...console }
    process.stderr.write = ((chunk: string | Uint8Array) => (printed.push(String(chunk)), true)) as typeof process.stderr.write
    for (const name of ['log', 'info', 'warn', 'error'] as const) console[name] = (...args: unknown[]) => void printed.push(args.map(String).join(' '))
    try {
      const error = await rejection(viteBuild(root, { apiKey: KEY, baseURL: server.url, timeoutMs: 300, pollIntervalMs: 5 }))
      printed.push(error.message, String(error.stack))
    } finally {
      process.stderr.write = write
      Object.assign(console, original)
    }
    const transcript = printed.join('\n')
    // each echo came through, scrubbed
    expect(transcript).toContain('refused: authorization was Bearer ***')
    expect(transcript).toContain('has a prediction id that is not')
    expect(transcript).toContain('may have been billed')
    expect(transcript).toContain('is still `held for ***`')
    expect(piecesIn(transcript)).toEqual([])
    for (const piece of PIECES) expect(filesContaining(root, piece), piece).toEqual([])
    expect(readdirSync(join(root, '.imagegen', 'images')).filter((f) => f.endsWith('.json'))).toHaveLength(1)

    // the CLI, over the three images left, in the same project
    writeProject(root, { 'imagegen.config.json': JSON.stringify({ timeoutMs: 300, pollIntervalMs: 5 }) })
    const { code, output } = await cli(root, ['generate', '--json'], { ATLASCLOUD_API_KEY: KEY, ATLASCLOUD_BASE_URL: server.url })
    expect(code).toBe(1)
    expect(JSON.parse(output.stdout)).toMatchObject({ ok: false })
    expect(output.stdout).toContain('refused: authorization was Bearer ***')
    expect(piecesIn(output.stdout)).toEqual([])
    expect(piecesIn(output.stderr)).toEqual([])
    for (const piece of PIECES) expect(filesContaining(root, piece), piece).toEqual([])
  })

  it('an error echoing the key, cut short by the service at its own length limit, shows no 8 characters of it', async () => {
    server.options = { apiKey: KEY }
    // the service cut its message inside the key (32 of its 33 characters), just inside our own 500-character cut
    const echo = `${'x'.repeat(440)} authorization: Bearer ${CUT}`
    server.options.intercept = (req) => (isSubmit(req) ? { status: 422, body: { code: 422, message: echo } } : 'continue')
    const error = await failure(atlas(server, { apiKey: KEY }).generate(job(tempDir())))
    expect(error.message).toContain('authorization: Bearer ***')
    expect(piecesIn(`${error.message}\n${error.stack}`)).toEqual([])
  })

  it('the whole key across our own 500-character cut is scrubbed before the cut', async () => {
    server.options = { apiKey: KEY }
    const echo = `${'y'.repeat(480)} ${KEY} ${'z'.repeat(100)}`
    server.options.intercept = (req) => (isSubmit(req) ? { status: 422, body: { code: 422, message: echo } } : 'continue')
    const error = await failure(atlas(server, { apiKey: KEY }).generate(job(tempDir())))
    expect(piecesIn(error.message)).toEqual([])
    expect(error.message).toContain(' *** zzz')
  })
})

describe('a base URL with credentials', () => {
  it('`ATLASCLOUD_BASE_URL=http://user:pass@host` is refused before anything is sent, naming the variable and not the password', async () => {
    const root = project('prompt: A lighthouse at dusk\nwidth: 64\nheight: 64\n')
    const baseURL = server.url.replace('http://', 'http://imagegen:hunter2-pass@')
    const { code, output } = await cli(root, ['generate'], { ATLASCLOUD_API_KEY: 'test-key', ATLASCLOUD_BASE_URL: baseURL })
    expect(code).toBe(1)
    expect(server.requests).toBe(0)
    expect(output.stderr).toContain('the Atlas Cloud base URL holds a user name or password')
    expect(output.stderr).toContain('`ATLASCLOUD_BASE_URL`')
    expect(`${output.stdout}${output.stderr}`).not.toContain('hunter2')
    expect(filesContaining(root, 'hunter2')).toEqual([])
  })
})
