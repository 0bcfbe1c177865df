import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { BUNDLERS, bundle } from './helpers/bundlers'
import { filesContaining } from './helpers/temp'
import { viteProject, writeProject } from './helpers/vite-project'

/** Recognisable, and never to be seen again once handed to the plugin. */
const KEY = 'sk-LEAKCANARY-7f3e9a1c5b2d'
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
let server: AtlasServer
const seen: string[] = []
const scratch = mkdtempSync(join(tmpdir(), 'imagegen-secrets-'))
const tmpBefore = new Set(readdirSync(tmpdir()))

beforeAll(async () => {
  server = await startAtlasServer({
    apiKey: KEY,
    latencyMs: 10,
    // A careless service that echoes the request's credentials in its errors.
    intercept: (req) =>
      req.method === 'POST' && JSON.stringify(req.body).includes('echo')
        ? { status: 422, body: { message: `invalid request, headers were: authorization=${req.headers.authorization}` } }
        : 'continue',
    fail: (body) => (String(body.prompt).includes('refuse') ? `refused for key ${KEY}` : undefined),
  })
})
afterAll(async () => {
  await server.close()
  rmSync(scratch, { recursive: true, force: true })
})

const capture = async (run: () => Promise<unknown>) => {
  const original = { log: console.log, warn: console.warn, error: console.error }
  for (const name of ['log', 'warn', 'error'] as const) console[name] = (...args: unknown[]) => void seen.push(args.map(String).join(' '))
  try {
    await run()
  } catch (error) {
    seen.push(String((error as Error).message), String((error as Error).stack))
  } finally {
    Object.assign(console, original)
  }
}

const MANIFESTS = {
  'src/main.js': "import ok from './ok.images.yaml'\nimport bad from './bad.images.yaml'\nglobalThis.__imagegen = { ok, bad }\n",
  'src/ok.images.yaml': 'prompt: A quiet harbour\nwidth: 64\nheight: 64\n',
  'src/bad.images.yaml': 'images:\n  echo: { prompt: please echo, width: 64, height: 64 }\n  refuse: { prompt: please refuse, width: 64, height: 64 }\n  fine: { prompt: a fine day, width: 64, height: 64 }\n',
}

describe('the API key', () => {
  const roots: string[] = []

  it.each(BUNDLERS)('appears in no output or file of a failing %s build', async (bundler) => {
    const root = viteProject(MANIFESTS)
    roots.push(root)
    const options = { apiKey: KEY, baseURL: server.url, pollIntervalMs: 5, cacheDir: join(root, '.imagegen') }
    await capture(() => bundle(bundler, root, options))
    expect(seen.join('\n')).toContain('refused for key') // the failure did come through…
    expect(seen.join('\n')).toContain('authorization=') // …and so did the echo, redacted
  })

  it('appears in no output of a 401, nor of the CLI, whatever happens', async () => {
    const root = viteProject(MANIFESTS)
    roots.push(root)
    const wrong = await startAtlasServer({ apiKey: 'another-key' })
    await capture(() => bundle('vite', root, { apiKey: KEY, baseURL: wrong.url, pollIntervalMs: 5 }))
    await wrong.close()
    expect(seen.join('\n')).toContain('ATLASCLOUD_API_KEY')

    writeProject(root, { 'imagegen.config.json': JSON.stringify({ pollIntervalMs: 5 }) })
    const env = { ...process.env, ATLASCLOUD_API_KEY: KEY, ATLASCLOUD_BASE_URL: server.url, TMPDIR: scratch }
    for (const args of [['generate'], ['generate', '--json'], ['status'], ['status', '--json'], ['verify'], ['prune', '--dry-run'], ['generate', '--bogus']]) {
      await new Promise<void>((resolve) =>
        execFile(process.execPath, [CLI, ...args], { cwd: root, env }, (_, stdout, stderr) => {
          seen.push(stdout, stderr)
          resolve()
        }),
      )
    }
    expect(seen.join('\n')).toMatch(/refused for key/)
  })

  it('is in nothing that was printed or written', () => {
    const transcript = seen.join('\n')
    expect(transcript.length).toBeGreaterThan(1000)
    expect(transcript).not.toContain(KEY)
    expect(transcript).not.toContain(KEY.slice(3))
    for (const root of roots) expect(filesContaining(root, KEY), root).toEqual([])
    expect(filesContaining(scratch, KEY)).toEqual([])
    // Temp folders others made during these runs (bundlers, sharp, the CLI).
    for (const name of readdirSync(tmpdir()).filter((n) => !tmpBefore.has(n) && n.startsWith('imagegen'))) {
      try {
        expect(filesContaining(join(tmpdir(), name), KEY)).toEqual([])
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'ENOTDIR') throw error
      }
    }
  })
})
