import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { acquireLock } from '../src/core/lock'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { listFiles, tempDir } from './helpers/temp'
import { viteBuild, viteProject, writeProject } from './helpers/vite-project'
import { build, createLogger } from 'vite'
import imagegen from '../src/vite'
import { openProject } from '../src/index'

const KEY = 'a'.repeat(64)
const TWO_DAYS_AGO = new Date(Date.now() - 2 * 24 * 3600_000)

/** A lock directory as another process would have left it, its owner.json naming `owner`. */
function leftLock(dir: string, owner?: object, mtime?: Date): string {
  const path = join(dir, `${KEY}.lock`)
  mkdirSync(path, { recursive: true })
  if (owner) writeFileSync(join(path, 'owner.json'), JSON.stringify({ since: new Date().toISOString(), ...owner }))
  if (mtime) utimesSync(path, mtime, mtime)
  return path
}

/** Resolves once a waiter given `signal` has slept between two tries `n` times (each sleep listens to the signal). */
function polled(signal: AbortSignal, n: number): Promise<void> {
  let count = 0
  const add = signal.addEventListener.bind(signal)
  return new Promise((resolve) => {
    signal.addEventListener = ((...args: Parameters<typeof add>) => {
      if (++count >= n) resolve()
      return add(...args)
    }) as typeof add
  })
}

/** Acquires the lock, failing at once (not hanging) if it had to wait: the wait message aborts it. */
function acquireWithoutWaiting(dir: string): Promise<() => Promise<void>> {
  const controller = new AbortController()
  const onWait = (holder: string) => controller.abort(new Error(`had to wait for ${holder}`))
  return acquireLock(dir, KEY, { waitNoticeMs: 0, onWait, signal: controller.signal })
}

/** What a waiter for the lock is told about its holder; it stops waiting then. */
async function holderSeen(dir: string): Promise<string> {
  const controller = new AbortController()
  let seen = ''
  const onWait = (holder: string) => {
    seen = holder
    controller.abort(new Error('seen'))
  }
  await expect(acquireLock(dir, KEY, { waitNoticeMs: 0, onWait, signal: controller.signal })).rejects.toThrow('seen')
  return seen
}

describe('the per-key lock', () => {
  it('lets one holder in at a time', async () => {
    const dir = tempDir()
    const order: string[] = []
    const first = await acquireLock(dir, KEY)
    let waiting!: () => void
    const waited = new Promise<void>((resolve) => (waiting = resolve))
    const second = acquireLock(dir, KEY, { intervalMs: 5, waitNoticeMs: 0, onWait: () => waiting(), signal: AbortSignal.timeout(5000) })
    void second.then(() => order.push('second in'), () => {})
    await waited // the second has found the lock held
    order.push('first out')
    await first()
    await (await second)()
    expect(order).toEqual(['first out', 'second in'])
    expect(readdirSync(dir)).toEqual([])
  })

  it('takes over at once the lock of a dead process on this host', async () => {
    const dir = tempDir()
    const dead = spawn(process.execPath, ['-e', '0'])
    await new Promise((resolve) => dead.once('exit', resolve))
    const path = leftLock(dir, { pid: dead.pid, host: hostname() })
    const release = await acquireWithoutWaiting(dir)
    expect(JSON.parse(readFileSync(join(path, 'owner.json'), 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() })
    await release()
    expect(readdirSync(dir)).toEqual([])
  })

  it('takes over a lock whose heartbeat is two days old though its PID is alive (PID 1, reused)', async () => {
    const dir = tempDir()
    const path = leftLock(dir, { pid: 1, host: hostname() }, TWO_DAYS_AGO)
    const release = await acquireWithoutWaiting(dir)
    expect(JSON.parse(readFileSync(join(path, 'owner.json'), 'utf8'))).toMatchObject({ pid: process.pid })
    await release()
    expect(existsSync(path)).toBe(false)
  })

  it('takes over a lock of another host, or with no owner, once its heartbeat is old', async () => {
    for (const owner of [{ pid: 1, host: 'elsewhere' }, undefined]) {
      const dir = tempDir()
      leftLock(dir, owner, TWO_DAYS_AGO)
      await (await acquireWithoutWaiting(dir))()
      expect(readdirSync(dir)).toEqual([])
    }
  })

  it('waits for a lock with a fresh heartbeat whatever its PID, naming its holder', async () => {
    const since = '2026-11-30T20:01:02.000Z'
    const foreign = tempDir()
    leftLock(foreign, { pid: 1, host: 'build-7', since })
    expect(await holderSeen(foreign)).toBe(`pid 1 on host build-7 since ${since}`)
    const unreadable = tempDir()
    writeFileSync(join(leftLock(unreadable), 'owner.json'), '{"pid":')
    expect(await holderSeen(unreadable)).toBe('an unknown process')
    const ours = tempDir()
    const release = await acquireLock(ours, KEY)
    const seen = await holderSeen(ours)
    expect(seen.startsWith(`pid ${process.pid} on host ${hostname()} since `)).toBe(true)
    expect(Date.now() - Date.parse(seen.split(' since ')[1]!)).toBeLessThan(60_000)
    await release()
  })

  it('says who holds the lock once, after waitNoticeMs', async () => {
    const dir = tempDir()
    leftLock(dir, { pid: 1, host: 'build-7' })
    const [soon, late] = [new AbortController(), new AbortController()]
    const [toldSoon, toldLate] = [vi.fn(), vi.fn()]
    const tries = Promise.all([polled(soon.signal, 5), polled(late.signal, 5)])
    const waiters = [
      acquireLock(dir, KEY, { intervalMs: 1, waitNoticeMs: 0, onWait: toldSoon, signal: soon.signal }),
      acquireLock(dir, KEY, { intervalMs: 1, waitNoticeMs: 60_000, onWait: toldLate, signal: late.signal }),
    ]
    await tries // each has found the lock held five times
    soon.abort(new Error('stop'))
    late.abort(new Error('stop'))
    await Promise.all(waiters.map((waiter) => expect(waiter).rejects.toThrow('stop')))
    expect(toldSoon).toHaveBeenCalledTimes(1)
    expect(toldSoon.mock.calls[0]![0]).toMatch(/^pid 1 on host build-7 since /)
    expect(toldLate).not.toHaveBeenCalled()
  })

  it("stops waiting when aborted, with the signal's own reason", async () => {
    const dir = tempDir()
    const held = await acquireLock(dir, KEY)
    const reason = new Error('stop')
    const controller = new AbortController()
    const waiting = acquireLock(dir, KEY, { intervalMs: 60_000, signal: controller.signal })
    await polled(controller.signal, 1) // asleep for a minute between two tries
    controller.abort(reason)
    await expect(waiting).rejects.toBe(reason)
    await expect(acquireLock(dir, KEY, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
    await held()
  })

  it('leaves the lock alone when released after it was taken over', async () => {
    const dir = tempDir()
    const path = join(dir, `${KEY}.lock`)
    const first = await acquireLock(dir, KEY)
    utimesSync(path, TWO_DAYS_AGO, TWO_DAYS_AGO) // as if the first had stopped beating two days ago
    const second = await acquireWithoutWaiting(dir)
    const owner = readFileSync(join(path, 'owner.json'), 'utf8')
    await expect(first()).resolves.toBeUndefined()
    expect(readFileSync(join(path, 'owner.json'), 'utf8')).toBe(owner)
    expect(await holderSeen(dir)).toMatch(/^pid \d+ on host /) // the second still holds it
    await second()
    expect(readdirSync(dir)).toEqual([])
  })
})

describe('two processes on one cache', () => {
  const API_KEY = 'sk-imagegen-lock-3a9d'
  const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
  let server: AtlasServer
  beforeAll(async () => {
    server = await startAtlasServer({
      apiKey: API_KEY,
      latencyMs: 300,
      // Slow submits widen the window in which a second process, without the lock, would
      // find no journal entry yet and pay for the same image again.
      intercept: (req) => (req.method === 'POST' ? new Promise((resolve) => setTimeout(() => resolve('continue'), 400)) : 'continue'),
    })
  })
  afterAll(() => server.close())

  const generate = (cwd: string) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'generate'], {
        cwd,
        env: { ...process.env, ATLASCLOUD_API_KEY: API_KEY, ATLASCLOUD_BASE_URL: server.url, CI: 'true' },
      })
      let output = ''
      child.stdout.on('data', (chunk) => (output += chunk))
      child.stderr.on('data', (chunk) => (output += chunk))
      child.on('exit', (code) => resolve({ code, output }))
    })

  it('generates each image once while two CLI runs and a build share it', async () => {
    const root = viteProject()
    writeProject(root, { 'imagegen.config.json': JSON.stringify({ pollIntervalMs: 10 }) })
    const [a, b, build] = await Promise.all([
      generate(root),
      generate(root),
      viteBuild(root, { apiKey: API_KEY, baseURL: server.url, pollIntervalMs: 10 }),
    ])
    expect([a.code, b.code], a.output + b.output).toEqual([0, 0])
    expect(server.submits).toHaveLength(4)
    expect(new Set(server.submits.map((s) => s.prompt)).size).toBe(4)
    expect(build.values.art.banner.src).toMatch(/\.webp$/)
    expect(listFiles(join(root, '.imagegen')).filter((f) => f.startsWith('locks/'))).toEqual([])
  })

  it('counts an image the other run made while this one waited for its lock as cached: the generated counts sum to the predictions', async () => {
    const root = viteProject()
    writeProject(root, { 'imagegen.config.json': JSON.stringify({ pollIntervalMs: 10 }) })
    server.reset()
    const runs = await Promise.all([generate(root), generate(root)])
    const counts = runs.map(({ code, output }) => {
      expect(code, output).toBe(0)
      const [, cached, generated] = /imagegen: 4 images — (\d+) cached, (\d+) generated in /.exec(output) ?? []
      return { cached: Number(cached), generated: Number(generated) }
    })
    expect(server.submits).toHaveLength(4)
    expect(counts[0]!.generated + counts[1]!.generated).toBe(4)
    for (const { cached, generated } of counts) expect(cached + generated).toBe(4)
  })
})

describe('a build that waits for a lock', () => {
  it('says who holds it, then makes the image once the lock is free', async () => {
    const root = viteProject({ 'imagegen.config.json': JSON.stringify({ provider: 'placeholder' }), 'src/main.js': "import hero from './hero.images.yaml'\nglobalThis.__imagegen = { hero }\n" })
    const key = openProject({}, { from: root, env: {} })
    const [entry] = (await key.readAll([join(root, 'src/hero.images.yaml')])).entries
    const release = await acquireLock(key.cache.locksDir, entry!.key)
    // without the notice the build would wait for ever: let go after a bound anyway, so that the test fails on the count below
    const bound = setTimeout(() => void release(), 20_000)
    const logs: string[] = []
    const logger = createLogger('silent')
    logger.warn = (msg) => {
      logs.push(msg)
      // the notice names this process; once it came, the holder lets go
      if (msg.includes('another process is making it')) void release()
    }
    await build({ root, configFile: false, customLogger: logger, logLevel: 'silent', plugins: [imagegen({ root })], build: { outDir: join(root, 'dist'), rollupOptions: { input: join(root, 'src/main.js') } } })
    clearTimeout(bound)
    expect(logs.filter((m) => m.includes('waiting for src/hero.images.yaml:1:1: another process is making it (pid ' + process.pid + ' on host '))).toHaveLength(1)
    expect(existsSync(join(root, '.imagegen/images', `${entry!.key}.png`))).toBe(true)
  })
})
