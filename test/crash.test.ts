/**
 * Crashes: a process generating images is SIGKILLed at each moment that matters — while a
 * submit is on its way, while polling, half-way through a download, with only the last byte
 * missing, and at each step of committing — and then the project is built again. Each time:
 * - no file under a real cache name is torn (records, images, journal and locks are whole;
 *   only `*.tmp` files may be left, and they count as no entry);
 * - every image that was paid for ends up cached, from the prediction that was paid;
 * - no image is submitted twice (counted by the service, per prompt);
 * - the run after leaves no temp file, and a journal entry or lock only of an entry the killed
 *   run had completed (harmless: it names the prediction cached; the lock's owner is dead).
 *
 * The one window no client can close: the service has no idempotency key, so a process killed
 * after its submit reached the service but before the answer's prediction id was journaled
 * leaves a paid prediction that nobody knows the id of. The next run cannot poll it and pays
 * again. The window is as short as it can be (the id is journaled, atomically, the moment the
 * answer arrives, before anything else); the last test below shows it, and the mid-submit test
 * holds its submits before the service takes them on, the case that must cost nothing.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import sharp from 'sharp'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { ImageCache, STALE_TEMP_MS } from '../src/core/cache'
import { processAlive } from '../src/core/lock'
import type { KeyedEntry } from '../src/core/entries'
import { startAtlasServer, type AtlasServer, type InterceptResult } from './atlas-server'
import { atlas, build, collection, entriesOf, FAST, names } from './helpers/atlas'
import { listFiles, tempDir } from './helpers/temp'
import { bundleScript } from './helpers/child-script'

let server: AtlasServer
let script: string
/** The IEND chunk's type and CRC: the last 8 bytes of every whole PNG. */
const PNG_END = Buffer.from([0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82])

beforeAll(async () => {
  server = await startAtlasServer()
  script = await childScript()
})
afterAll(async () => {
  rmSync(script, { force: true })
  await server.close()
})
beforeEach(() => {
  server.options = {}
  server.reset()
})

/**
 * A moment inside the child's own file operations: the first call of `fn` (of
 * node:fs/promises) whose argument `arg` matches `path` SIGKILLs the process before it acts.
 * These are the steps of a commit, which no outside observer can time.
 */
interface FsMoment {
  fn: 'rename' | 'rm'
  arg: 0 | 1
  path: string
}

/** The steps of a commit, each with what a kill there leaves (checked, to prove the moment came). */
const COMMIT_MOMENTS: Record<string, { moment: FsMoment; left: (project: string) => Promise<void> }> = {
  'before the image is renamed into place': {
    moment: { fn: 'rename', arg: 1, path: String.raw`[\\/]images[\\/][0-9a-f]{64}\.png$` },
    // the image, whole and flushed, in its temp file only
    left: async (project) => {
      const whole = temps(project).filter(({ file }) => /^images\/\.[0-9a-f]{64}\.\d+\.[0-9a-f]{8}\.tmp$/.test(file))
      expect(whole.some(({ file }) => readFileSync(join(project, '.imagegen', file)).subarray(-8).equals(PNG_END))).toBe(true)
    },
  },
  'before the record is renamed into place': {
    moment: { fn: 'rename', arg: 1, path: String.raw`[\\/]images[\\/][0-9a-f]{64}\.json$` },
    // an image under its name, its record whole in a temp file: no entry yet
    left: async (project) => {
      const images = readdirSync(join(project, '.imagegen', 'images'))
      const record = (image: string) => image.replace(/png$/, 'json')
      const orphans = images.filter((name) => name.endsWith('.png') && !images.includes(record(name)))
      // (other images may be a step behind: named, their record not begun)
      expect(orphans.some((image) => images.some((name) => name.startsWith(`.${record(image)}.`) && name.endsWith('.tmp')))).toBe(true)
    },
  },
  'before the journal entry is removed': {
    moment: { fn: 'rm', arg: 0, path: String.raw`[\\/]pending[\\/][0-9a-f]{64}\.json$` },
    // a whole entry whose prediction is still journaled
    left: async (project) => {
      const cache = new ImageCache(join(project, '.imagegen'))
      const both = await Promise.all([...journal(project)].map(async ([key, id]) => (await cache.lookup(key))?.record.predictionId === id))
      expect(both).toContain(true)
    },
  },
}

describe('a generating process killed', () => {
  it('mid-submit: submits held by the service before it takes them on cost nothing', async () => {
    const project = tempDir('imagegen-crash-')
    const entries = await entriesOf(project, collection(names(4, 'submit')))
    // two submits go through (their predictions run long), two are held before the service
    // creates a prediction: the process dies with both kinds in flight
    server.options.latencyMs = 60_000
    const held: Array<(result: InterceptResult) => void> = []
    const isHeld = (prompt: unknown) => /submit[23]$/.test(String(prompt))
    server.options.intercept = (req) =>
      req.method === 'POST' && isHeld(req.body?.prompt) ? new Promise((resolve) => held.push(resolve)) : 'continue'

    await killedRun(project, () => {
      expect(held).toHaveLength(2)
      expect(journal(project).size).toBe(2)
    })
    // the service never took the held submits on: they are dropped, as a connection lost
    // before the service read them would be. Released with 'continue' instead, the service
    // would create and bill predictions whose ids died with the process: the last test's window
    for (const release of held) release('reset')
    server.options.intercept = undefined
    const paid = await expectIntact(project)
    expect(paid.size).toBe(2)

    server.options.latencyMs = 0
    server.finish()
    await rerun(project, entries, paid)
    expect(server.submitAttempts).toBe(6)
  })

  it('mid-poll: every prediction is polled again, none submitted again', async () => {
    const project = tempDir('imagegen-crash-')
    const entries = await entriesOf(project, collection(names(4, 'poll')))
    server.options.latencyMs = 60_000
    await killedRun(project, () => {
      expect(journal(project).size).toBe(4)
      expect(server.polls).toBeGreaterThanOrEqual(8)
    })
    const paid = await expectIntact(project)
    expect(paid.size).toBe(4)

    server.finish()
    await rerun(project, entries, paid)
  })

  it.each<[string, number | 'half']>([
    ['half the image sent', 'half'],
    ['all but the last byte sent', -1],
  ])('mid-download, %s: the leftover is only a temp file, and the image is downloaded again', async (_, stallAfter) => {
    const project = tempDir('imagegen-crash-')
    const entries = await entriesOf(project, collection(names(3, 'download')))
    server.options.latencyMs = 0
    // the first download of each output sends part of the image, then nothing, holding the connection
    server.options.download = (_id, attempt) => (attempt === 1 ? { stallAfter } : 'continue')
    await killedRun(project, () => {
      expect(server.downloadsStalled).toBe(3)
      expect(temps(project).filter(({ file, size }) => file.startsWith('images/') && size > 0)).toHaveLength(3)
    })
    const paid = await expectIntact(project)
    expect(paid.size).toBe(3)
    expect(temps(project).length).toBeGreaterThanOrEqual(3)

    await rerun(project, entries, paid)
    expect(server.downloadRequests).toBe(6)
  })

  it.each(Object.entries(COMMIT_MOMENTS))('%s: the entry is whole or absent, and nothing is paid twice', async (_, { moment, left }) => {
    const project = tempDir('imagegen-crash-')
    const entries = await entriesOf(project, collection(names(3, 'commit')))
    server.options.latencyMs = 0
    // outputs are served once every submit is journaled, so the kill finds no submit in flight
    // (that is the window of the last test)
    server.options.intercept = async (req): Promise<InterceptResult> => {
      if (req.path.startsWith('/outputs/')) await vi.waitFor(() => expect(journal(project).size).toBe(3), { timeout: 20_000, interval: 5 })
      return 'continue'
    }
    await killedRun(project, undefined, moment)
    await left(project)
    const paid = await expectIntact(project)

    await rerun(project, entries, paid)
  })

  it('the window no client can close: after the service accepted a submit, before its id was journaled, the next run pays again', async () => {
    const project = tempDir('imagegen-crash-')
    const entries = await entriesOf(project, collection(['unjournaled']))
    server.options.latencyMs = 0
    await killedRun(project, undefined, { fn: 'rename', arg: 1, path: String.raw`[\\/]pending[\\/][0-9a-f]{64}\.json$` })
    const paid = await expectIntact(project)
    expect(paid.size).toBe(0)
    expect(server.submits).toHaveLength(1)

    ageTemps(project)
    const { cache, run } = build(project, atlas(server))
    await run(entries)
    // billed twice, and the first prediction's id is known to no one but the service
    expect([...server.predictionsPerPrompt().values()]).toEqual([2])
    expect((await cache.lookup(entries[0]!.key))?.record.predictionId).toMatch(/^pred_\d+$/)
    expect(temps(project)).toEqual([])
  })
})

describe('temp files left by killed processes', () => {
  it('are swept by the next write once old; fresh ones, and those of live processes, are kept', async () => {
    const dir = join(tempDir('imagegen-crash-'), '.imagegen')
    const dead = spawn(process.execPath, ['-e', '0'])
    await new Promise((resolve) => dead.once('exit', resolve))
    const key = 'a'.repeat(64)
    const files = {
      oldOfDead: join(dir, 'images', `.${key}.png.${dead.pid}.0123abcd.tmp`),
      oldJournalOfDead: join(dir, 'pending', `.${key}.json.${dead.pid}.4567abcd.tmp`),
      freshOfDead: join(dir, 'images', `.${key}.json.${dead.pid}.89abcdef.tmp`),
      oldOfLive: join(dir, 'images', `.${key}.png.${process.ppid}.0123abcd.tmp`),
    }
    mkdirSync(join(dir, 'images'), { recursive: true })
    mkdirSync(join(dir, 'pending'), { recursive: true })
    const old = new Date(Date.now() - STALE_TEMP_MS - 60_000)
    for (const [name, path] of Object.entries(files)) {
      writeFileSync(path, 'half an image')
      if (name.startsWith('old')) utimesSync(path, old, old)
    }
    const submittedAt = new Date().toISOString()
    await new ImageCache(dir).writePending({ key, provider: 'atlas', submittedAt, state: { id: 'pred_1', submittedAt } })
    expect(Object.fromEntries(Object.entries(files).map(([name, path]) => [name, existsSync(path)]))).toEqual({
      oldOfDead: false,
      oldJournalOfDead: false,
      freshOfDead: true,
      oldOfLive: true,
    })
  })
})

/** Prediction ids of the journal, by key. */
function journal(project: string): Map<string, string> {
  const dir = join(project, '.imagegen', 'pending')
  const found = new Map<string, string>()
  if (!existsSync(dir)) return found
  for (const name of readdirSync(dir).filter((n) => /^[0-9a-f]{64}\.json$/.test(n))) {
    found.set(basename(name, '.json'), (JSON.parse(readFileSync(join(dir, name), 'utf8')) as { state: { id: string } }).state.id)
  }
  return found
}

/** Temp files anywhere in the cache, with their sizes. */
function temps(project: string): Array<{ file: string; size: number }> {
  const dir = join(project, '.imagegen')
  if (!existsSync(dir)) return []
  return listFiles(dir)
    .filter((file) => file.endsWith('.tmp'))
    .map((file) => ({ file, size: statSync(join(dir, file)).size }))
}

/**
 * Runs the child on `project` and kills it: with SIGKILL from here once `until` holds, or
 * from inside at `moment`. Fails if the child ended any other way.
 */
async function killedRun(project: string, until?: () => void, moment?: FsMoment): Promise<void> {
  const child = spawn(process.execPath, [script, project, server.url, JSON.stringify(moment ?? null)], { stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_, signal) => resolve(signal)))
  if (until) {
    const reached = vi.waitFor(until, { timeout: 20_000, interval: 5 }).then(() => true)
    reached.catch(() => {})
    if (!(await Promise.race([reached, exited.then(() => false)]))) expect.fail('the child ended before the moment to kill it')
    child.kill('SIGKILL')
  }
  expect(await exited).toBe('SIGKILL')
}

/**
 * Checks what a killed run left: every file under a real name is whole (records match their
 * images, images decode to the last byte, journal entries and the locks' owner.json are JSON); `*.tmp` files
 * are allowed and are no entries. Returns the journal: the predictions paid for and not cached.
 */
async function expectIntact(project: string): Promise<Map<string, string>> {
  const dir = join(project, '.imagegen')
  const cache = new ImageCache(dir)
  for (const file of listFiles(dir)) {
    const path = join(dir, file)
    if (file.endsWith('.tmp') || file === '.gitignore') continue
    if (/^images\/[0-9a-f]{64}\.json$/.test(file)) {
      const entry = await cache.lookup(basename(file, '.json'))
      expect(entry, file).toBeDefined()
      expect(createHash('sha256').update(readFileSync(entry!.path)).digest('hex'), file).toBe(entry!.record.sha256)
    } else if (/^images\/[0-9a-f]{64}\.png$/.test(file)) {
      // an image may have its name before its record does; it must be whole all the same:
      // it decodes, and ends with the PNG's closing chunk (decoders forgive a missing one)
      await expect(sharp(path).raw().toBuffer(), file).resolves.toBeInstanceOf(Buffer)
      expect(readFileSync(path).subarray(-8).equals(PNG_END), file).toBe(true)
    } else if (/^(pending\/[0-9a-f]{64}\.json|locks\/[0-9a-f]{64}\.lock\/owner\.json)$/.test(file)) {
      expect(() => JSON.parse(readFileSync(path, 'utf8')), file).not.toThrow()
    } else {
      expect.fail(`unexpected file in the cache: ${file}`)
    }
  }
  for (const key of await cache.keys()) expect(await cache.lookup(key), key).toBeDefined()
  return journal(project)
}

/** Makes the temp files of the cache look as if their process died an hour ago. */
function ageTemps(project: string): void {
  const old = new Date(Date.now() - STALE_TEMP_MS - 60_000)
  for (const { file } of temps(project)) utimesSync(join(project, '.imagegen', file), old, old)
}

/**
 * Builds again in this process, the leftovers of the killed one aged as if it died an hour
 * ago; then every entry is cached, the paid predictions are the ones cached, each prompt was
 * submitted once, and no temp file is left.
 */
async function rerun(project: string, entries: KeyedEntry[], paid: Map<string, string>): Promise<void> {
  ageTemps(project)
  const { cache, run } = build(project, atlas(server))
  await run(entries)
  for (const entry of entries) {
    const cached = await cache.lookup(entry.key)
    expect(cached, entry.name).toBeDefined()
    if (paid.has(entry.key)) expect(cached!.record.predictionId).toBe(paid.get(entry.key))
  }
  expect([...server.predictionsPerPrompt().values()]).toEqual(entries.map(() => 1))
  // a journal entry outlives its image only when the kill came between the two; it names the
  // prediction cached, so resuming it, should the image be deleted, would pay nothing again
  for (const [key, id] of journal(project)) expect((await cache.lookup(key))?.record.predictionId).toBe(id)
  // so does the dead process's lock of such a key: taken over as soon as anyone wants it
  for (const name of readdirSync(join(project, '.imagegen', 'locks'))) {
    expect(await cache.lookup(basename(name, '.lock'))).toBeDefined()
    expect(processAlive((JSON.parse(readFileSync(join(project, '.imagegen', 'locks', name, 'owner.json'), 'utf8')) as { pid: number }).pid)).toBe(false)
  }
  expect(temps(project)).toEqual([])
}

/**
 * The real scheduler and Atlas provider on a project until killed, bundled from the sources
 * (packages stay external, so it lives under node_modules to find them). Its third argument,
 * an FsMoment or null, makes it SIGKILL itself at that file operation; node:fs/promises is
 * patched before generating starts and `syncBuiltinESMExports` carries the patch into the
 * named imports of the bundled sources.
 */
async function childScript(): Promise<string> {
  const src = join(import.meta.dirname, '..', 'src')
  const contents = `
    import fsp from 'node:fs/promises'
    import { syncBuiltinESMExports } from 'node:module'
    import { join } from 'node:path'
    import { readFileSync } from 'node:fs'
    import { ImageCache } from ${JSON.stringify(join(src, 'core/cache'))}
    import { keyEntries } from ${JSON.stringify(join(src, 'core/entries'))}
    import { parseManifest } from ${JSON.stringify(join(src, 'core/manifest'))}
    import { planImages } from ${JSON.stringify(join(src, 'core/plan'))}
    import { Scheduler } from ${JSON.stringify(join(src, 'core/scheduler'))}
    import { createAtlasProvider } from ${JSON.stringify(join(src, 'providers/atlas'))}
    const [project, baseURL, momentJson] = process.argv.slice(2)
    const moment = JSON.parse(momentJson)
    if (moment) {
      const original = fsp[moment.fn]
      const path = new RegExp(moment.path)
      fsp[moment.fn] = (...args) => {
        if (path.test(String(args[moment.arg]))) {
          process.kill(process.pid, 'SIGKILL')
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
        }
        return original(...args)
      }
      syncBuiltinESMExports()
    }
    const manifestPath = join(project, 'art.images.yaml')
    const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), 'art.images.yaml')
    const entries = await keyEntries(manifest, { manifestPath, root: project, provider: 'atlas' })
    const cache = new ImageCache(join(project, '.imagegen'))
    // no timeout of its own may end it before the test kills it
    const provider = createAtlasProvider({ ...${JSON.stringify(FAST)}, apiKey: 'test-key', baseURL, timeoutMs: 600000, requestTimeoutMs: 600000 })
    const scheduler = new Scheduler({ provider, cache, concurrency: 8 })
    await scheduler.generate(planImages(entries, cache).missing)
  `
  const file = await bundleScript(contents, 'crashing-run')
  return file
}
