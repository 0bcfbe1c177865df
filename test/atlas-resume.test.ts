/**
 * Paying once: a prediction journalled by a run that died is polled by the next run, not
 * submitted again, unless the service has lost it (then it is submitted afresh, once).
 */
import { spawn } from 'node:child_process'
import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { ImageCache } from '../src/core/cache'
import type { KeyedEntry } from '../src/core/entries'
import { GenerationError } from '../src/core/scheduler'
import { type InterceptResult } from './atlas-server'
import { atlas, build, collection, entriesOf, FAST, names, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'
import { bundleScript } from './helpers/child-script'

const server = useAtlasServer()
const DAY = 24 * 60 * 60 * 1000


/** Submits `entry`'s request straight to the server, as a run that died would have, and journals it. */
async function journalled(project: string, entry: KeyedEntry, submittedAt: Date, options: { latencyMs?: number } = {}): Promise<string> {
  const cache = new ImageCache(join(project, '.imagegen'))
  const latency = server.options.latencyMs
  server.options.latencyMs = options.latencyMs ?? 0
  let predictionId = ''
  const died = new AbortController()
  await atlas(server)
    .generate({
      key: entry.key,
      request: entry.request,
      signal: died.signal,
      destination: join(project, 'never-written.png'),
      onSubmitted: async state => {
        predictionId = state.id
        // as journaled at `submittedAt`: the provider's state says when, the journal too
        await cache.writePending({ key: entry.key, provider: 'atlas', submittedAt: submittedAt.toISOString(), state: { ...state, submittedAt: submittedAt.toISOString() } })
        died.abort()
      },
    })
    .catch(() => {})
  server.options.latencyMs = latency
  server.reset()
  return predictionId
}

/** Records the path of every request. */
function recordPaths(): string[] {
  const paths: string[] = []
  server.options.intercept = req => {
    paths.push(`${req.method} ${req.path}`)
    return 'continue'
  }
  return paths
}

describe('atlas resume', () => {
  it('polls a journalled prediction instead of submitting it', async () => {
    const project = tempDir()
    const [entry] = await entriesOf(project, collection(['one']))
    const id = await journalled(project, entry!, new Date(Date.now() - 60_000))
    const { cache, run } = build(project, atlas(server))
    await run([entry!])
    expect(server.submitAttempts).toBe(0)
    expect((await cache.lookup(entry!.key))?.record.predictionId).toBe(id)
    expect(await cache.readPending(entry!.key)).toBeUndefined()
  })

  it('a prediction the service no longer knows is dropped and submitted afresh', async () => {
    const project = tempDir()
    const [entry] = await entriesOf(project, collection(['lost']))
    const id = await journalled(project, entry!, new Date(Date.now() - 60 * 60_000))
    server.forget(id)
    const { cache, run } = build(project, atlas(server))
    await run([entry!])
    expect(server.submits).toHaveLength(1)
    const record = (await cache.lookup(entry!.key))!.record
    expect(record.predictionId).not.toBe(id)
    expect(await cache.readPending(entry!.key)).toBeUndefined()
  })

  it('a 404 for a prediction journalled moments ago is its warm-up: waited out, not paid again', async () => {
    const project = tempDir()
    const [entry] = await entriesOf(project, collection(['young']))
    const id = await journalled(project, entry!, new Date())
    let refused = 0
    server.options.intercept = req => (req.path.endsWith(`/prediction/${id}`) && refused++ < 3 ? { status: 404, body: { code: 404, message: 'not found' } } : 'continue')
    const { cache, run } = build(project, atlas(server, { warmUpMs: 10_000 }))
    await run([entry!])
    expect(refused).toBeGreaterThan(3)
    expect(server.submitAttempts).toBe(0)
    expect((await cache.lookup(entry!.key))?.record.predictionId).toBe(id)
  })

  it('a journal entry older than the outputs’ 14 days is not polled: submitted afresh', async () => {
    const project = tempDir()
    const [entry] = await entriesOf(project, collection(['ancient']))
    const id = await journalled(project, entry!, new Date(Date.now() - 15 * DAY))
    const paths = recordPaths()
    const { cache, run } = build(project, atlas(server))
    await run([entry!])
    expect(paths.filter(p => p.endsWith(`/prediction/${id}`))).toEqual([])
    expect(server.submits).toHaveLength(1)
    expect((await cache.lookup(entry!.key))?.record.predictionId).not.toBe(id)
  })

  it('a journal entry 13 days old is still polled', async () => {
    const project = tempDir()
    const [entry] = await entriesOf(project, collection(['old']))
    const id = await journalled(project, entry!, new Date(Date.now() - 13 * DAY))
    const { cache, run } = build(project, atlas(server))
    await run([entry!])
    expect(server.submitAttempts).toBe(0)
    expect((await cache.lookup(entry!.key))?.record.predictionId).toBe(id)
  })

  it('a resumed prediction whose output expired is generated again, once, and the journal follows', async () => {
    const project = tempDir()
    const [entry] = await entriesOf(project, collection(['expired']))
    const id = await journalled(project, entry!, new Date(Date.now() - 2 * DAY))
    server.options.download = outputId => (outputId === id ? 'expired' : 'continue')
    const { cache, run } = build(project, atlas(server))
    const journal: string[] = []
    server.options.intercept = async (req): Promise<InterceptResult> => {
      // what the journal says when the new prediction is first polled
      if (req.method === 'GET' && req.path.includes('/prediction/') && !req.path.endsWith(id)) journal.push((await cache.readPending(entry!.key))!.state.id)
      return 'continue'
    }
    await run([entry!])
    expect(server.submits).toHaveLength(1)
    const record = (await cache.lookup(entry!.key))!.record
    expect(record.predictionId).not.toBe(id)
    expect(journal[0]).toBe(record.predictionId)
    expect(await cache.readPending(entry!.key)).toBeUndefined()
  })

  it('an aborted run sends nothing after the abort, rejects, and the next run resumes what was paid', async () => {
    const project = tempDir()
    server.options = { latencyMs: 60_000 }
    const entries = await entriesOf(project, collection(names(6)))
    const controller = new AbortController()
    let submitted = 0
    const { cache, run } = build(project, atlas(server), {
      concurrency: 2,
      signal: controller.signal,
      onEvent: e => {
        if (e.type === 'submitted' && ++submitted === 2) controller.abort(new Error('the build stopped'))
      },
    })
    const error = await run(entries).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(GenerationError)
    expect((error as Error).message).toContain('6 images could not be generated')
    const requests = server.requests
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(server.requests).toBe(requests)
    expect(server.submits).toHaveLength(2)
    expect(readdirSync(join(project, '.imagegen', 'pending'))).toHaveLength(2)

    server.finish()
    server.options.latencyMs = 0
    await build(project, atlas(server)).run(entries)
    expect(server.submits).toHaveLength(6)
    expect([...server.predictionsPerPrompt().values()]).toEqual([1, 1, 1, 1, 1, 1])
    for (const entry of entries) expect(await cache.lookup(entry.key)).toBeDefined()
  })
})

describe('atlas resume after a killed process', () => {
  it('a run killed mid-poll, then a new run: every image billed once', async () => {
    const project = tempDir()
    const count = 5
    const entries = await entriesOf(project, collection(names(count, 'killed')))
    server.options = { latencyMs: 60_000 }

    const child = spawn(process.execPath, [await childScript(), project, server.url], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise(resolve => child.once('exit', resolve))
    // every prediction submitted and journalled, and polled at least twice
    await vi.waitFor(
      () => {
        expect(server.submits).toHaveLength(count)
        expect(server.polls).toBeGreaterThanOrEqual(2 * count)
      },
      { timeout: 20_000, interval: 10 },
    )
    child.kill('SIGKILL')
    await exited
    const journal = readdirSync(join(project, '.imagegen', 'pending'))
    expect(journal).toHaveLength(count)

    server.finish()
    const { cache, run } = build(project, atlas(server))
    await run(entries)
    expect(server.submits).toHaveLength(count)
    expect([...server.predictionsPerPrompt().values()]).toEqual(Array(count).fill(1))
    for (const entry of entries) expect((await cache.lookup(entry.key))?.record.predictionId).toMatch(/^pred_\d+$/)
    expect(readdirSync(join(project, '.imagegen', 'pending'))).toEqual([])
  })
})

/**
 * A script that runs the real scheduler and Atlas provider on a project until killed,
 * bundled from the sources (packages stay external, so it lives under node_modules to find them).
 */
async function childScript(): Promise<string> {
  const src = join(import.meta.dirname, '..', 'src')
  const contents = `
    import { join } from 'node:path'
    import { readFileSync } from 'node:fs'
    import { ImageCache } from ${JSON.stringify(join(src, 'core/cache'))}
    import { keyEntries } from ${JSON.stringify(join(src, 'core/entries'))}
    import { parseManifest } from ${JSON.stringify(join(src, 'core/manifest'))}
    import { planImages } from ${JSON.stringify(join(src, 'core/plan'))}
    import { Scheduler } from ${JSON.stringify(join(src, 'core/scheduler'))}
    import { createAtlasProvider } from ${JSON.stringify(join(src, 'providers/atlas'))}
    const [project, baseURL] = process.argv.slice(2)
    const manifestPath = join(project, 'art.images.yaml')
    const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), 'art.images.yaml')
    const entries = await keyEntries(manifest, { manifestPath, root: project, provider: 'atlas' })
    const cache = new ImageCache(join(project, '.imagegen'))
    const provider = createAtlasProvider({ ...${JSON.stringify(FAST)}, apiKey: 'test-key', baseURL, timeoutMs: 600000 })
    const scheduler = new Scheduler({ provider, cache, concurrency: 8 })
    await scheduler.generate(planImages(entries, cache).missing)
  `
  const file = await bundleScript(contents, 'killed-run')
  onTestFinished(() => rmSync(file, { force: true }))
  return file
}

describe('a paid prediction stays journaled', () => {
  it.each([
    ['a poll answered by a proxy page under HTTP 200', (path: string) => path.includes('/prediction/'), { status: 200, raw: '<html><body>Please log in</body></html>' }],
    ['a poll refused with 401 (the key was rotated mid-run)', (path: string) => path.includes('/prediction/'), { status: 401, body: { message: 'Unauthorized' } }],
    ['a download refused with 403 by the storage', (path: string) => path.startsWith('/outputs/'), { status: 403, raw: '<Error>AccessDenied</Error>' }],
  ] as const)('when %s, and the next run resumes it without paying again', async (_, matches, answer) => {
    const dir = tempDir()
    const entries = await entriesOf(dir, collection(['one']))
    let refusing = true
    server.options.intercept = (req) => (refusing && matches(req.path) ? answer : 'continue')
    const first = build(dir, atlas(server, { maxRetries: 1 }))
    await expect(first.run(entries)).rejects.toThrow(GenerationError)
    expect(server.submits).toHaveLength(1)
    expect(readdirSync(join(dir, '.imagegen/pending'))).toHaveLength(1)

    refusing = false
    const second = build(dir, atlas(server))
    await second.run(entries)
    expect(server.submits).toHaveLength(1)
    expect(await second.cache.lookup(entries[0]!.key)).toBeDefined()
  })
})
