import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { acquireLock } from '../src/core/lock'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { listFiles, tempDir } from './helpers/temp'
import { viteBuild, viteProject, writeProject } from './helpers/vite-project'

const KEY = 'a'.repeat(64)

describe('the per-key lock', () => {
  it('lets one holder in at a time', async () => {
    const dir = tempDir()
    const order: string[] = []
    const first = await acquireLock(dir, KEY, { intervalMs: 5 })
    const second = acquireLock(dir, KEY, { intervalMs: 5 }).then((release) => {
      order.push('second in')
      return release
    })
    await new Promise((resolve) => setTimeout(resolve, 30))
    order.push('first out')
    await first()
    await (await second)()
    expect(order).toEqual(['first out', 'second in'])
    expect(existsSync(join(dir, `${KEY}.lock`))).toBe(false)
  })

  it('takes over a lock whose process is gone', async () => {
    const dir = tempDir()
    const dead = spawn(process.execPath, ['-e', '0'])
    await new Promise((resolve) => dead.once('exit', resolve))
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `${KEY}.lock`), JSON.stringify({ pid: dead.pid, host: hostname(), since: new Date().toISOString() }))
    const release = await acquireLock(dir, KEY, { intervalMs: 5 })
    await release()
  })

  it('takes over a lock of another host once it is no longer touched', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, `${KEY}.lock`), JSON.stringify({ pid: 1, host: 'elsewhere', since: new Date().toISOString() }))
    const release = await acquireLock(dir, KEY, { intervalMs: 5, staleMs: 20 })
    await release()
  })

  it('stops waiting when aborted', async () => {
    const dir = tempDir()
    const held = await acquireLock(dir, KEY, { intervalMs: 5 })
    const controller = new AbortController()
    const waiting = acquireLock(dir, KEY, { intervalMs: 5, signal: controller.signal })
    controller.abort(new Error('stop'))
    await expect(waiting).rejects.toThrow('stop')
    await held()
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
})
