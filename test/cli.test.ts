/**
 * The `imagegen` CLI in temp projects against the loopback Atlas server: `run(argv, io)` in this
 * process for what a command prints and returns, and the built `dist/cli.js` as a child process
 * where only a real process can tell (signals, exit codes, a pipe). `npm test` builds it first;
 * alone, run `npx tsup` before.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { filesContaining, listFiles, tempDir } from './helpers/temp'
import { viteBuild, viteProject } from './helpers/vite-project'
import { run as runCli } from '../src/cli/run'
import imagegen from '../src/vite'
import { build as viteBuildApi } from 'vite'

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
const API_KEY = 'sk-imagegen-cli-5e0b93c1'
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

let server: AtlasServer
/** Everything any run printed, to check that the key never shows. */
const transcript: string[] = []
const projects: string[] = []

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build the package first (\`npx tsup\`; \`npm test\` does it)`)
  server = await startAtlasServer({ apiKey: API_KEY, latencyMs: 20 })
})
afterAll(async () => {
  await server.close()
  for (const text of transcript) expect(text).not.toContain(API_KEY)
  for (const dir of projects) expect(filesContaining(dir, API_KEY)).toEqual([])
})
beforeEach(() => {
  server.reset()
  server.options.fail = undefined
  server.options.intercept = undefined
})

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** The environment of a run: the test server and its key, nothing inherited that could change the outcome. */
function cliEnv(extra: Record<string, string | undefined> = {}, url = server.url): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(ATLASCLOUD_|IMAGEGEN_|CI$|FORCE_COLOR$)/.test(name)) env[name] = value
  }
  return { ...env, ATLASCLOUD_BASE_URL: url, ATLASCLOUD_API_KEY: API_KEY, ...extra }
}

function start(cwd: string, args: string[], env: NodeJS.ProcessEnv = cliEnv()): { child: ChildProcess; output: { stdout: string; stderr: string }; done: Promise<Run> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const output = { stdout: '', stderr: '' }
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk))
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      transcript.push(output.stdout, output.stderr)
      resolve({ code, signal, ...output })
    })
  })
  return { child, output, done }
}

/** Runs a command in this process, as `imagegen` would in `cwd`; stdout and stderr as the process would print them. */
async function cli(cwd: string, args: string[], env: NodeJS.ProcessEnv = cliEnv()): Promise<Run> {
  const output = { stdout: '', stderr: '' }
  const stderr = Object.assign(new PassThrough(), { isTTY: false, columns: 80 })
  const code = await runCli(args, {
    cwd,
    env,
    terminal: { out: (line) => void (output.stdout += `${line}\n`), err: (line) => void (output.stderr += `${line}\n`), stderr, interactive: false },
  })
  transcript.push(output.stdout, output.stderr)
  return { code, signal: null, ...output }
}

const CONFIG = { pollIntervalMs: 10 }

function project(files: Record<string, string>, config: Record<string, unknown> = CONFIG): string {
  const dir = tempDir('imagegen-cli-')
  projects.push(dir)
  write(dir, { 'imagegen.config.json': JSON.stringify(config), ...files })
  return dir
}

function write(dir: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), content)
  }
}

const ART = 'defaults:\n  width: 64\n  height: 64\nimages:\n  banner:\n    prompt: A paper-cut skyline\n  avatar:\n    prompt: A robot mascot\n  hills:\n    prompt: Rolling hills\n'
const HERO = 'prompt: A lighthouse at dusk\nwidth: 96\nheight: 64\n'
const site = (config?: Record<string, unknown>) => project({ 'src/art.images.yaml': ART, 'src/hero.images.yaml': HERO, 'node_modules/dep/x.images.yaml': 'prompt: not ours\n' }, config)

const cacheFiles = (dir: string) => (existsSync(join(dir, '.imagegen/images')) ? readdirSync(join(dir, '.imagegen/images')).sort() : [])
const images = (dir: string) => cacheFiles(dir).filter((f) => f.endsWith('.png'))
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '')

describe('imagegen --help, --version and usage errors', () => {
  it('prints the help with every command, and the version', async () => {
    const dir = project({})
    const help = await cli(dir, ['--help'])
    expect(help.code).toBe(0)
    for (const command of ['generate [paths…]', 'status [paths…]', 'prune [--dry-run]', 'verify']) expect(help.stdout).toContain(`imagegen ${command}`)
    const generateHelp = await cli(dir, ['generate', '--help'])
    expect(generateHelp.code).toBe(0)
    for (const flag of ['--dry-run', '--json', '--concurrency N', '--max-new N']) expect(generateHelp.stdout).toContain(flag)
    // the built executable: its exit codes and streams as a shell sees them
    const bare = await start(dir, []).done
    expect([bare.code, bare.stdout]).toEqual([2, ''])
    expect(bare.stderr).toContain('imagegen generate [paths…]')
    const version = await start(dir, ['--version']).done
    expect([version.code, version.stdout.trim()]).toEqual([0, VERSION])
    const typo = await start(dir, ['stauts']).done
    expect([typo.code, typo.stdout]).toEqual([2, ''])
    expect(typo.stderr).toBe('[imagegen] unknown command `stauts`: did you mean `status`? (see `imagegen --help`)\n')
  })

  it('exits 2 with an `[imagegen]` message on stderr for unknown commands, flags and bad values', async () => {
    const dir = project({})
    const cases: [string[], string][] = [
      [['stauts'], 'unknown command `stauts`: did you mean `status`?'],
      [['generate', '--max-nw', '3'], 'unknown option `--max-nw` for `imagegen generate`: did you mean `--max-new`?'],
      [['generate', '--concurrency', '0'], '`--concurrency` must be a whole number from 1 to 64 (got `0`)'],
      [['generate', '--max-new', 'lots'], '`--max-new` must be a whole number 0 or more (got `lots`)'],
      [['prune', 'src'], '`imagegen prune` takes no paths'],
      [['status', 'nowhere'], '`nowhere` does not exist'],
    ]
    for (const [args, message] of cases) {
      const run = await cli(dir, args)
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stdout).toBe('')
      expect(run.stderr).toMatch(/^\[imagegen\] /)
      expect(run.stderr).toContain(message)
    }
  })
})

describe('imagegen generate', () => {
  it('prints the plan, then a line per image, and caches every image; a second run submits nothing', async () => {
    const dir = site()
    const run = await cli(dir, ['generate'])
    expect(run.code).toBe(0)
    expect(run.stdout).toBe('')
    const err = lines(run.stderr)
    expect(err[0]).toBe('imagegen: 4 images in 2 manifests — 0 cached, 4 to generate, within the limit of 25 new images')
    expect(err.filter((l) => /^imagegen: submitted .+ \(pred_\d+\)$/.test(l))).toHaveLength(4)
    expect(err.filter((l) => /^imagegen: \[\d\/4\] generated /.test(l))).toHaveLength(4)
    expect(run.stderr).toContain('generated src/art.images.yaml:5:3 `banner` in ')
    expect(run.stderr).toContain('generated src/hero.images.yaml:1:1 in ')
    expect(err.at(-1)).toMatch(/^imagegen: 4 images — 0 cached, 4 generated in \d+\.\ds$/)
    expect(server.submits).toHaveLength(4)
    expect(images(dir)).toHaveLength(4)
    // node_modules is never searched
    expect(server.submits.map((s) => s.prompt)).not.toContain('not ours')

    server.reset()
    const again = await cli(dir, ['generate'])
    expect(again.code).toBe(0)
    expect(lines(again.stderr)[0]).toBe('imagegen: 4 images in 2 manifests — 4 cached, nothing to generate')
    expect(server.requests).toBe(0)
  })

  it('generates only the manifests under the given paths', async () => {
    const dir = site()
    const run = await cli(dir, ['generate', 'src/hero.images.yaml'])
    expect(run.code).toBe(0)
    expect(lines(run.stderr)[0]).toBe('imagegen: 1 image in 1 manifest — 0 cached, 1 to generate, within the limit of 25 new images')
    expect(server.submits.map((s) => s.prompt)).toEqual(['A lighthouse at dusk'])
  })

  it('--dry-run prints the plan and what it would generate, and touches nothing', async () => {
    const dir = site()
    const run = await cli(dir, ['generate', '--dry-run'])
    expect(run.code).toBe(0)
    expect(lines(run.stderr)).toEqual(['imagegen: 4 images in 2 manifests — 0 cached, 4 to generate, within the limit of 25 new images'])
    const out = lines(run.stdout)
    expect(out).toHaveLength(4)
    expect(out[0]).toMatch(/^src\/art\.images\.yaml:5:3 `banner` +[0-9a-f]{12} +64x64 +new +A paper-cut skyline$/)
    expect(out[3]).toMatch(/^src\/hero\.images\.yaml:1:1 +[0-9a-f]{12} +96x64 +new +A lighthouse at dusk$/)
    expect(server.requests).toBe(0)
    expect(existsSync(join(dir, '.imagegen'))).toBe(false)
  })

  it('--json prints one result with the documented schema', async () => {
    const dir = site()
    const run = await cli(dir, ['generate', '--json'])
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('')
    const result = JSON.parse(run.stdout)
    expect(result).toMatchObject({
      version: 1,
      command: 'generate',
      ok: true,
      exitCode: 0,
      cacheDir: '.imagegen',
      provider: 'atlas',
      dryRun: false,
      interrupted: false,
      maxNewImages: 25,
      withinLimit: true,
      summary: { manifests: 2, entries: 4, images: 4, cached: 0, toGenerate: 4, generated: 4, failed: 0, pending: 0 },
    })
    expect(typeof result.seconds).toBe('number')
    expect(result.images).toHaveLength(4)
    for (const image of result.images) {
      expect(image).toMatchObject({ state: 'generated', key: expect.stringMatching(/^[0-9a-f]{64}$/), predictionId: expect.stringMatching(/^pred_\d+$/) })
      expect(image.file).toBe(`.imagegen/images/${image.key}.png`)
      expect(existsSync(join(dir, image.file))).toBe(true)
    }
    const banner = result.images.find((i: { entries: { name: string }[] }) => i.entries[0]!.name === 'banner')
    expect(banner).toMatchObject({ prompt: 'A paper-cut skyline', width: 64, height: 64, entries: [{ manifest: 'src/art.images.yaml', line: 5, column: 3, name: 'banner' }] })
    expect(result.images.find((i: { prompt: string }) => i.prompt === 'A lighthouse at dusk').entries[0].name).toBeNull()

    const again = JSON.parse((await cli(dir, ['generate', '--json'])).stdout)
    expect(again.summary).toMatchObject({ cached: 4, toGenerate: 0, generated: 0 })
    expect(again.images.map((i: { state: string }) => i.state)).toEqual(['cached', 'cached', 'cached', 'cached'])

    const dry = JSON.parse((await cli(dir, ['generate', '--json', '--dry-run', '--max-new', '0'])).stdout)
    expect(dry).toMatchObject({ dryRun: true, ok: true, maxNewImages: 0, withinLimit: true })

    const bad = await cli(dir, ['generate', '--json', '--concurrency', 'x'])
    expect(bad.code).toBe(2)
    expect(JSON.parse(bad.stdout)).toMatchObject({ version: 1, command: 'generate', ok: false, exitCode: 2, error: expect.stringContaining('`--concurrency`') })
  })

  it('the bill guard refuses before any request; --max-new allows it; --concurrency limits predictions at once', async () => {
    const dir = site({ ...CONFIG, maxNewImages: 2 })
    const refused = await cli(dir, ['generate'])
    expect(refused.code).toBe(1)
    expect(lines(refused.stderr)[0]).toBe('imagegen: 4 images in 2 manifests — 0 cached, 4 to generate, OVER the limit of 2 new images')
    expect(refused.stderr).toContain('[imagegen] 4 new images would be generated, more than `maxNewImages` allows (2). Nothing was submitted.')
    expect(refused.stderr).toContain('imagegen generate --max-new 4')
    expect(server.requests).toBe(0)

    const json = await cli(dir, ['generate', '--json'])
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, exitCode: 1, withinLimit: false, maxNewImages: 2, summary: { toGenerate: 4, generated: 0 }, error: expect.stringContaining('--max-new 4') })
    expect(JSON.parse(json.stdout).images.map((i: { state: string }) => i.state)).toEqual(['missing', 'missing', 'missing', 'missing'])

    const dry = await cli(dir, ['generate', '--dry-run'])
    expect(dry.code).toBe(0)
    expect(dry.stderr).toContain('a run would be refused by the bill guard; allow it with `imagegen generate --max-new 4`')

    const allowed = await cli(dir, ['generate', '--max-new', '4', '--concurrency', '1'])
    expect(allowed.code).toBe(0)
    expect(lines(allowed.stderr)[0]).toContain('4 to generate, within the limit of 4 new images')
    expect(server.submits).toHaveLength(4)
    expect(server.maxInFlight).toBe(1)
  })

  it('without a key, or offline, fails with exit 1 and lists what is missing, submitting nothing', async () => {
    const dir = site()
    const noKey = await cli(dir, ['generate'], cliEnv({ ATLASCLOUD_API_KEY: undefined }))
    expect(noKey.code).toBe(1)
    expect(noKey.stderr).toContain('[imagegen] 4 images are not in the cache and cannot be generated: no API key is set (ATLASCLOUD_API_KEY). Nothing was submitted.')
    expect(noKey.stderr).toContain('  src/art.images.yaml:5:3 `banner`')
    const offline = await cli(dir, ['generate'], cliEnv({ IMAGEGEN_OFFLINE: '1' }))
    expect(offline.code).toBe(1)
    expect(offline.stderr).toContain('offline mode is on')
    expect(server.requests).toBe(0)
  })

  it('reports a failed prediction by entry with exit 1 and keeps the others', async () => {
    const dir = site()
    server.options.fail = (body) => (String(body.prompt).includes('robot') ? 'prompt refused by the safety checker' : undefined)
    const run = await cli(dir, ['generate'])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/imagegen: \[\d\/4\] failed src\/art\.images\.yaml:7:3 `avatar`: .*prompt refused by the safety checker/)
    expect(run.stderr).toMatch(/imagegen: 4 images — 0 cached, 3 generated, 1 failed in \d+\.\ds/)
    expect(run.stderr).toContain('[imagegen] 1 image could not be generated (3 others were generated and cached):')
    expect(images(dir)).toHaveLength(3)
  })

  it('exits 2 on manifest errors, naming file, line and column, before any request', async () => {
    const dir = site()
    write(dir, { 'src/bad.images.yaml': 'prompt: A fox\nwidth: 1000\n', 'src/worse.images.yaml': 'prompt: A fox\ncolour: red\n' })
    mkdirSync(join(dir, '.imagegen/images'), { recursive: true }) // so that prune has a cache to look at
    for (const args of [['generate'], ['status'], ['prune']]) {
      const run = await cli(dir, args)
      expect(run.code, args[0]).toBe(2)
      expect(run.stderr).toContain('[imagegen] 2 manifests have problems; nothing was done.')
      expect(run.stderr).toContain('src/bad.images.yaml:2:8: `width` must be a multiple of 16 (got 1000)')
      expect(run.stderr).toContain('src/worse.images.yaml:2:1: unknown field `colour`')
    }
    expect(server.requests).toBe(0)
  })
})

describe('imagegen.config.json', () => {
  it('refuses an API key in the file (exit 2) without echoing it, and names unknown options', async () => {
    const dir = project({ 'hero.images.yaml': HERO }, { apiKey: API_KEY, concurency: 2 })
    const run = await cli(dir, ['status'])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('[imagegen] imagegen.config.json: `apiKey` must not be in the config file, which is committed: set the ATLASCLOUD_API_KEY environment variable instead')
    expect(run.stderr).toContain('unknown option `concurency`: did you mean `concurrency`?')
    // the file was written by this test; the check that no file holds the key is for the CLI's
    rmSync(join(dir, 'imagegen.config.json'))
  })

  it('is found from a subfolder, and its settings (cacheDir, provider) are used', async () => {
    const dir = project({ 'src/hero.images.yaml': HERO }, { cacheDir: 'art-cache', provider: 'placeholder' })
    const run = await cli(join(dir, 'src'), ['generate'], cliEnv({ ATLASCLOUD_API_KEY: undefined }))
    expect(run.code).toBe(0)
    expect(server.requests).toBe(0)
    expect(readdirSync(join(dir, 'art-cache/images')).filter((f) => f.endsWith('.png'))).toHaveLength(1)
    const record = JSON.parse(readFileSync(join(dir, 'art-cache/images', readdirSync(join(dir, 'art-cache/images')).find((f) => f.endsWith('.json'))!), 'utf8'))
    expect(record.provider).toBe('placeholder')
    expect((await cli(dir, ['status'])).code).toBe(0)
  })
})

describe('include / exclude', () => {
  it('limit the manifests the CLI finds, from imagegen.config.json (globs relative to the root)', async () => {
    const dir = site({ ...CONFIG, exclude: ['src/hero.images.yaml'] })
    const excluded = JSON.parse((await cli(dir, ['status', '--json'])).stdout)
    expect(excluded.summary).toMatchObject({ manifests: 1, entries: 3 })
    expect(excluded.entries.map((e: { manifest: string }) => e.manifest)).toEqual(['src/art.images.yaml', 'src/art.images.yaml', 'src/art.images.yaml'])
    write(dir, { 'imagegen.config.json': JSON.stringify({ ...CONFIG, include: '**/hero.*' }) })
    expect(JSON.parse((await cli(dir, ['status', '--json'])).stdout).summary).toMatchObject({ manifests: 1, entries: 1 })
  })
})

describe('imagegen status', () => {
  it('prints one line per entry and a summary; exits 1 when an entry is missing', async () => {
    const dir = site()
    await cli(dir, ['generate'])
    const ok = await cli(dir, ['status'])
    expect(ok.code).toBe(0)
    const out = lines(ok.stdout)
    expect(out).toHaveLength(4)
    expect(out[0]).toMatch(/^src\/art\.images\.yaml:5:3 +banner +[0-9a-f]{12} +cached$/)
    expect(out[3]).toMatch(/^src\/hero\.images\.yaml:1:1 +- +[0-9a-f]{12} +cached$/)
    expect(ok.stderr).toBe('imagegen: 4 entries (4 images) in 2 manifests — 4 cached, 0 missing\n')

    write(dir, { 'src/art.images.yaml': `${ART}  sea:\n    prompt: A calm sea\n` })
    const missing = await cli(dir, ['status'])
    expect(missing.code).toBe(1)
    expect(lines(missing.stdout)).toHaveLength(5)
    expect(missing.stdout).toMatch(/src\/art\.images\.yaml:11:3 +sea +[0-9a-f]{12} +missing\n/)
    expect(missing.stderr).toContain('imagegen: 5 entries (5 images) in 2 manifests — 4 cached, 1 missing')
    expect(missing.stderr).toContain('[imagegen] 1 image is not in the cache: run `imagegen generate` where ATLASCLOUD_API_KEY is set, then commit .imagegen/.')

    const json = await cli(dir, ['status', '--json'])
    expect(json.code).toBe(1)
    const result = JSON.parse(json.stdout)
    expect(result).toMatchObject({ version: 1, command: 'status', ok: false, exitCode: 1, summary: { manifests: 2, entries: 5, images: 5, cached: 4, missing: 1 } })
    expect(result.entries.find((e: { name: string }) => e.name === 'sea')).toMatchObject({ manifest: 'src/art.images.yaml', line: 11, column: 3, state: 'missing', file: null, pendingPredictionId: null })
    expect(result.entries.find((e: { name: string }) => e.name === 'banner').file).toMatch(/^\.imagegen\/images\/[0-9a-f]{64}\.png$/)

    expect((await cli(dir, ['status', 'src/hero.images.yaml'])).code).toBe(0)
    expect(server.submits).toHaveLength(4)
  })
})

describe('imagegen prune', () => {
  it('keeps every entry a manifest uses and deletes the others; --dry-run lists them with their size', async () => {
    const dir = site()
    await cli(dir, ['generate'])
    const before = cacheFiles(dir)
    expect(before).toHaveLength(8)
    const used = JSON.parse((await cli(dir, ['status', '--json'])).stdout).entries as { name: string | null; key: string }[]
    const hills = used.find((e) => e.name === 'hills')!.key
    write(dir, { 'src/art.images.yaml': ART.replace('  hills:\n    prompt: Rolling hills\n', '') })

    const dry = await cli(dir, ['prune', '--dry-run'])
    expect(dry.code).toBe(0)
    expect(lines(dry.stdout)).toHaveLength(1)
    expect(dry.stdout).toMatch(new RegExp(`^would remove  ${hills.slice(0, 12)}  \\d+(\\.\\d)? k?B  atlas  Rolling hills\\n$`))
    expect(dry.stderr).toMatch(/^imagegen: 1 unused entry \(\d+(\.\d)? k?B\) would be removed from \.imagegen\/; 3 in use\./)
    expect(cacheFiles(dir)).toEqual(before)

    const pruned = await cli(dir, ['prune'])
    expect(pruned.code).toBe(0)
    expect(pruned.stdout).toMatch(new RegExp(`^removed  ${hills.slice(0, 12)}  `))
    expect(cacheFiles(dir)).toEqual(before.filter((f) => !f.startsWith(hills)))
    for (const entry of used.filter((e) => e.name !== 'hills')) {
      expect(cacheFiles(dir)).toEqual(expect.arrayContaining([`${entry.key}.json`, `${entry.key}.png`]))
    }
    expect((await cli(dir, ['status'])).code).toBe(0)
    expect(lines((await cli(dir, ['prune'])).stderr)[0]).toBe('imagegen: removed 0 unused entries (0 B) from .imagegen/; kept 3 in use')
  })

  it('keeps unused entries of another provider unless --any-provider', async () => {
    const dir = project({ 'hero.images.yaml': HERO }, { provider: 'placeholder' })
    await cli(dir, ['generate'])
    write(dir, { 'imagegen.config.json': JSON.stringify(CONFIG) })
    const kept = await cli(dir, ['prune'])
    expect(kept.code).toBe(0)
    expect(kept.stderr).toContain('kept 1 unused entry made by `placeholder`, while the configured provider is `atlas`')
    expect(images(dir)).toHaveLength(1)
    await cli(dir, ['prune', '--any-provider'])
    expect(images(dir)).toHaveLength(0)
  })

  it('refuses to empty the cache when it finds no manifest at all', async () => {
    const dir = site()
    await cli(dir, ['generate'])
    rmSync(join(dir, 'src'), { recursive: true })
    const run = await cli(dir, ['prune'])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('no manifests (*.images.yaml) found')
    expect(images(dir)).toHaveLength(4)
  })
})

describe('imagegen verify', () => {
  it('passes on an intact cache and lists a file with a flipped byte, exit 1', async () => {
    const dir = site()
    await cli(dir, ['generate'])
    const ok = await cli(dir, ['verify'])
    expect([ok.code, ok.stdout, ok.stderr]).toEqual([0, '', 'imagegen: verified 4 cache entries — 4 intact, 0 damaged\n'])

    const victim = join(dir, '.imagegen/images', images(dir)[1]!)
    const bytes = readFileSync(victim)
    bytes[bytes.length >> 1]! ^= 0xff
    writeFileSync(victim, bytes)
    const bad = await cli(dir, ['verify'])
    expect(bad.code).toBe(1)
    expect(lines(bad.stdout)).toEqual([expect.stringMatching(new RegExp(`^damaged  \\.imagegen/images/${images(dir)[1]}  SHA-256 [0-9a-f]{12}… differs from the recorded [0-9a-f]{12}…$`))])
    expect(bad.stderr).toContain('imagegen: verified 4 cache entries — 3 intact, 1 damaged')
    expect(bad.stderr).toContain('[imagegen] 1 cache entry is damaged. Restore it from git (`git checkout -- .imagegen`)')

    const record = join(dir, '.imagegen/images', cacheFiles(dir).find((f) => f.endsWith('.json'))!)
    writeFileSync(record, '{ not json')
    const worse = await cli(dir, ['verify'])
    expect(worse.code).toBe(1)
    expect(lines(worse.stdout)).toHaveLength(2)
    expect(worse.stdout).toContain('the record is not valid JSON')
  })
})

describe('Ctrl-C during imagegen generate', () => {
  it('keeps the images that arrived and the journal; the next run resumes the rest without a second submit', async () => {
    // A server of its own, so that `pred_N` is the N-th submit. Predictions of "slow" prompts
    // stay `processing` while `hold` is set: they are in flight when the signal comes, whatever the timing.
    const own = await startAtlasServer({ apiKey: API_KEY, latencyMs: 20 })
    let hold = true
    own.options.intercept = ({ method, path }) => {
      const match = /\/prediction\/pred_(\d+)$/.exec(path)
      if (hold && method === 'GET' && match && String(own.submits[Number(match[1]) - 1]?.prompt).startsWith('slow')) {
        return { status: 200, body: { code: 200, message: 'success', data: { id: `pred_${match[1]}`, status: 'processing' } } }
      }
      return 'continue'
    }
    try {
      const manifest = 'defaults:\n  width: 64\n  height: 64\nimages:\n' + ['quick one', 'quick two', 'slow one', 'slow two'].map((p, i) => `  image${i}:\n    prompt: ${p}\n`).join('')
      const dir = project({ 'art.images.yaml': manifest })
      const run = start(dir, ['generate'], cliEnv({}, own.url))
      await until(run.child, () => count(run.output.stderr, /submitted .* \(pred_\d+\)/g) === 4 && count(run.output.stderr, /\] generated /g) === 2)
      expect(readdirSync(join(dir, '.imagegen/pending'))).toHaveLength(2)
      run.child.kill('SIGINT')
      const stopped = await run.done
      expect(stopped.code).toBe(130)
      expect(stopped.stderr).toContain('imagegen: stopping')
      expect(stopped.stderr).toContain('[imagegen] interrupted: 2 images generated and cached; 2 submitted predictions are journaled in .imagegen/pending/ and resumed without a new submit.')
      expect(stopped.stderr).not.toMatch(/\] failed /)
      expect(images(dir)).toHaveLength(2)
      expect(readdirSync(join(dir, '.imagegen/pending'))).toHaveLength(2)
      expect(listFiles(join(dir, '.imagegen')).filter((f) => f.endsWith('.tmp'))).toEqual([])
      expect(own.submits).toHaveLength(4)
      // The four submits ran at once: which ids the slow ones got depends on their order.
      const slowIds = own.submits.flatMap((body, i) => (String(body.prompt).startsWith('slow') ? [`pred_${i + 1}`] : []))
      expect(slowIds).toHaveLength(2)

      const status = await cli(dir, ['status'], cliEnv({}, own.url))
      expect(status.code).toBe(1)
      for (const id of slowIds) expect(status.stdout).toContain(`missing (submitted as ${id}; \`imagegen generate\` resumes it)`)

      const plan = await cli(dir, ['generate', '--dry-run'], cliEnv({}, own.url))
      expect(lines(plan.stderr)[0]).toBe('imagegen: 4 images in 1 manifest — 2 cached, 2 to generate (2 already submitted, resumed without paying again), within the limit of 25 new images')
      expect(count(plan.stdout, / resume +slow /g)).toBe(2)

      hold = false
      const resumed = await cli(dir, ['generate', '--json'], cliEnv({}, own.url))
      expect(resumed.code).toBe(0)
      const result = JSON.parse(resumed.stdout)
      expect(result.summary).toMatchObject({ cached: 2, toGenerate: 2, generated: 2, pending: 0 })
      expect(result.images.filter((i: { state: string }) => i.state === 'generated').map((i: { predictionId: string }) => i.predictionId).sort()).toEqual(slowIds.sort())
      expect(own.submits).toHaveLength(4)
      expect(images(dir)).toHaveLength(4)
      expect(readdirSync(join(dir, '.imagegen/pending'))).toEqual([])
      transcript.push(JSON.stringify(own.submits))
    } finally {
      await own.close()
    }
  })
})

const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length

/** Waits for `condition` on the child's output; fails if the child ends first. */
function until(child: ChildProcess, condition: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = setInterval(() => {
      if (condition()) {
        clearInterval(check)
        resolve()
      } else if (child.exitCode !== null) {
        clearInterval(check)
        reject(new Error(`the CLI ended (exit ${child.exitCode}) before the awaited output`))
      }
    }, 10)
  })
}

describe('a bundler root in a subfolder, as Nuxt 4 sets Vite\'s root to `app/`', () => {
  it('`vite build` there and `imagegen status` at the project root agree on one root, config file and cache', async () => {
    const dir = project(
      { 'package.json': '{}', 'app/index.html': '<script type="module" src="./main.js"></script>', 'app/main.js': "import hero from './hero.images.yaml'\nexport default hero\n", 'app/hero.images.yaml': HERO },
      { provider: 'placeholder', cacheDir: 'art-cache' },
    )
    await viteBuildApi({ root: join(dir, 'app'), configFile: false, logLevel: 'silent', plugins: [imagegen()], build: { outDir: join(dir, 'dist') } })
    // the config file beside package.json was found from app/: its provider and cache folder were used
    expect(readdirSync(join(dir, 'art-cache/images')).filter((f) => f.endsWith('.png'))).toHaveLength(1)
    expect(existsSync(join(dir, 'app/.imagegen')) || existsSync(join(dir, 'app/art-cache'))).toBe(false)
    const status = await cli(dir, ['status', '--json'])
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ root: dir, cacheDir: 'art-cache', summary: { entries: 1, cached: 1, missing: 0 } })
    expect(JSON.parse(status.stdout).entries[0].manifest).toBe('app/hero.images.yaml')
    // and from inside app/, the CLI finds the same root
    expect(JSON.parse((await cli(join(dir, 'app'), ['status', '--json'])).stdout).root).toBe(dir)
  })
})

describe('the CI recipe', () => {
  it('a job with the key runs `imagegen generate`; a build job then runs offline from the cache, and both read imagegen.config.json', async () => {
    const root = viteProject()
    projects.push(root)
    write(root, { 'imagegen.config.json': JSON.stringify({ ...CONFIG, cacheDir: 'generated-art' }) })
    const generate = await cli(root, ['generate'])
    expect(generate.code).toBe(0)
    expect(server.submits).toHaveLength(4)
    expect((await cli(root, ['status'])).code).toBe(0)

    server.reset()
    const build = await viteBuild(root, { mode: 'offline' })
    expect(server.requests).toBe(0)
    expect(build.logs.join('\n')).toMatch(/imagegen: 4 images — 4 cached, 0 generated/)
    expect(build.values.hero).toMatchObject({ width: 96, height: 64, format: 'webp' })
  })
})
