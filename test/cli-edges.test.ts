/**
 * The CLI's edges (issue 15, item 5): JSON errors, `--json` for verify and prune, flags before the command, the hidden
 * cursor, colours, did-you-mean with transpositions, display widths. In this process through `run()`, and through the
 * built `dist/cli.js` where only a real process tells (colours chosen from the environment, the exit of a process).
 * No network: the placeholder provider, or the loopback Atlas server.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { bundleScript } from './helpers/child-script'
import { tempDir } from './helpers/temp'
import { HIDE_CURSOR, SHOW_CURSOR } from '../src/cli/progress'
import { run } from '../src/cli/run'
import { clipColumns, table, type CommandContext, type Terminal } from '../src/cli/terminal'
import { didYouMean } from '../src/core/did-you-mean'
import { clip } from '../src/core/errors'
import { FIELD_NAMES } from '../src/core/schema'

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
const API_KEY = 'sk-imagegen-edges-7c41a9'

type Output = { code: number; stdout: string; stderr: string }

/** Runs `imagegen` in this process; `stream` stands for stderr (the progress bar's), which `terminal` may make a TTY. */
async function cli(cwd: string, args: string[], extra: Omit<Partial<CommandContext>, 'terminal'> & { terminal?: Partial<Terminal> } = {}): Promise<Output & { stream: string }> {
  const output = { stdout: '', stderr: '', stream: '' }
  const stderr = { write: (chunk: string) => ((output.stream += chunk), true), columns: 80 } as unknown as Terminal['stderr']
  const terminal: Terminal = {
    out: (line) => void (output.stdout += `${line}\n`),
    err: (line) => void (output.stderr += `${line}\n`),
    stderr,
    interactive: false,
    ...extra.terminal,
  }
  const code = await run(args, { cwd, env: {}, ...extra, terminal })
  return { code, ...output }
}

/** Runs the built `imagegen` as a process with only `env` (and PATH), stdout and stderr piped. */
const bin = (cwd: string, args: string[], env: Record<string, string> = {}) =>
  new Promise<Output>((resolve) =>
    execFile(process.execPath, [CLI, ...args], { cwd, env: { PATH: process.env.PATH, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    ),
  )

function project(files: Record<string, string>, config: Record<string, unknown> = { provider: 'placeholder' }): string {
  const dir = tempDir('imagegen-edges-')
  for (const [path, content] of Object.entries({ 'imagegen.config.json': JSON.stringify(config), ...files })) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), content)
  }
  return dir
}

const art = (names: string[]) => `defaults:\n  width: 64\n  height: 64\nimages:\n${names.map((name) => `  ${name}:\n    prompt: ${name} at dawn\n`).join('')}`
const usage = (message: string, command: string | null) => ({ version: 1, command, ok: false, exitCode: 2, error: `[imagegen] ${message} (see \`imagegen --help\`)` })

beforeAll(() => {
  expect(readdirSync(join(CLI, '..'))).toContain('cli.js')
})

describe('--json failures', () => {
  it('print one JSON error document on stdout, exit 2, whatever the bad argument', async () => {
    const dir = project({ 'art.images.yaml': art(['sea']) })
    const cases: [string[], ReturnType<typeof usage>][] = [
      [['generate', '--concurrency', 'x', '--json'], usage('`--concurrency` must be a whole number from 1 to 64 (got `x`)', 'generate')],
      [['status', '--json', '--bogus'], usage('unknown option `--bogus` for `imagegen status`; its options are --json, --help', 'status')],
      [['stauts', '--json'], usage('unknown command `stauts`: did you mean `status`?', null)],
      [['verify', 'src', '--json'], usage('`imagegen verify` takes no paths (got `src`): it always looks at the whole project', 'verify')],
      [['--json'], usage('no command given; the commands are generate, status, prune, verify, variants, pick', null)],
    ]
    for (const [args, document] of cases) {
      const result = await cli(dir, args)
      expect(result.code, args.join(' ')).toBe(2)
      expect(JSON.parse(result.stdout), args.join(' ')).toEqual(document)
      expect(result.stderr, args.join(' ')).toBe(`${document.error}\n`)
    }
  })

  it('come from the process too, on stdout, with exit code 2', async () => {
    const dir = project({ 'art.images.yaml': art(['sea']) })
    const result = await bin(dir, ['generate', '--json', '--max-nw', '3'])
    expect(result.code).toBe(2)
    expect(JSON.parse(result.stdout)).toEqual(usage('unknown option `--max-nw` for `imagegen generate`: did you mean `--max-new`?', 'generate'))
  })
})

describe('verify --json and prune --json', () => {
  it('verify --json: the summary, each damaged entry and each image without a record', async () => {
    const dir = project({ 'art.images.yaml': art(['sea', 'hills']) })
    expect((await cli(dir, ['generate'])).code).toBe(0)
    const intact = await cli(dir, ['verify', '--json'])
    const header = { version: 1, command: 'verify', root: dir, cacheDir: '.imagegen', provider: 'placeholder' }
    expect(intact.code).toBe(0)
    expect(JSON.parse(intact.stdout)).toEqual({
      ...header, ok: true, exitCode: 0,
      summary: { entries: 2, intact: 2, damaged: 0, withoutRecord: 0 }, damaged: [], withoutRecord: [],
    })
    expect(intact.stderr).toBe('')

    const pngs = readdirSync(join(dir, '.imagegen/images')).filter((name) => name.endsWith('.png')).sort()
    writeFileSync(join(dir, '.imagegen/images', pngs[0]!), 'version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n')
    writeFileSync(join(dir, '.imagegen/images', `${'f'.repeat(64)}.png`), 'stray')
    const damaged = await cli(dir, ['verify', '--json'])
    expect(damaged.code).toBe(1)
    expect(JSON.parse(damaged.stdout)).toEqual({
      ...header, ok: false, exitCode: 1,
      summary: { entries: 2, intact: 1, damaged: 1, withoutRecord: 1 },
      damaged: [{
        key: pngs[0]!.replace('.png', ''), file: `.imagegen/images/${pngs[0]}`, lfsPointer: true,
        problem: 'the image is a Git LFS pointer, not the image (the checkout ran without `git lfs pull`)',
      }],
      withoutRecord: ['f'.repeat(64)],
    })
  })

  it('prune --json: what was (or would be) removed, and the unused entries of another provider it kept', async () => {
    const dir = project({ 'art.images.yaml': art(['sea', 'hills']), 'old.images.yaml': 'prompt: An old banner\nwidth: 64\nheight: 64\n' })
    expect((await cli(dir, ['generate'])).code).toBe(0)
    const oldKey = readdirSync(join(dir, '.imagegen/images'))
      .filter((name) => name.endsWith('.json'))
      .map((name) => JSON.parse(readFileSync(join(dir, '.imagegen/images', name), 'utf8')) as { key: string; spec: { prompt: string }; size: number })
      .find((record) => record.spec.prompt === 'An old banner')!
    const bytes = readFileSync(join(dir, '.imagegen/images', `${oldKey.key}.json`)).length + oldKey.size
    rmSync(join(dir, 'old.images.yaml'))
    const header = { version: 1, command: 'prune', ok: true, exitCode: 0, root: dir, cacheDir: '.imagegen' }
    const removed = [{ key: oldKey.key, bytes, provider: 'placeholder', prompt: 'An old banner' }]

    const kept = await cli(project({}, { provider: 'atlas' }), ['prune', '--json'])
    expect(JSON.parse(kept.stdout)).toEqual({ ...header, root: expect.any(String), provider: 'atlas', dryRun: false, summary: { entries: 0, inUse: 0, removed: 0, bytes: 0, kept: 0 }, removed: [], kept: [] })

    writeFileSync(join(dir, 'imagegen.config.json'), JSON.stringify({ provider: 'atlas' }))
    const other = await cli(dir, ['prune', '--json'])
    expect(JSON.parse(other.stdout)).toEqual({
      ...header, provider: 'atlas', dryRun: false,
      summary: { entries: 3, inUse: 0, removed: 0, bytes: 0, kept: 3 },
      removed: [],
      kept: expect.arrayContaining([{ key: oldKey.key, provider: 'placeholder' }]),
    })
    expect(other.stderr).toBe('')

    writeFileSync(join(dir, 'imagegen.config.json'), JSON.stringify({ provider: 'placeholder' }))
    const dry = await cli(dir, ['prune', '--dry-run', '--json'])
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout)).toEqual({ ...header, provider: 'placeholder', dryRun: true, summary: { entries: 3, inUse: 2, removed: 1, bytes, kept: 0 }, removed, kept: [] })
    const done = await cli(dir, ['prune', '--json'])
    expect(JSON.parse(done.stdout)).toEqual({ ...header, provider: 'placeholder', dryRun: false, summary: { entries: 3, inUse: 2, removed: 1, bytes, kept: 0 }, removed, kept: [] })
    expect(readdirSync(join(dir, '.imagegen/images')).filter((name) => name.startsWith(oldKey.key))).toEqual([])
  })
})

describe('flags before the command', () => {
  it('`imagegen --json <command>` is `imagegen <command> --json`, for every command', async () => {
    const dir = project({ 'art.images.yaml': art(['sea']) })
    for (const command of ['status', 'verify', 'prune']) {
      const before = await cli(dir, ['--json', command])
      const after = await cli(dir, [command, '--json'])
      expect(JSON.parse(before.stdout).command, command).toBe(command)
      expect(before).toEqual(after)
    }
    const generated = await cli(dir, ['--json', 'generate', '--dry-run'])
    expect(JSON.parse(generated.stdout)).toMatchObject({ command: 'generate', dryRun: true, summary: { toGenerate: 1 } })
  })

  it('an unknown flag before the command is a usage error with a did-you-mean', async () => {
    const dir = project({})
    const typo = await cli(dir, ['--jsno', 'status'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toBe('[imagegen] unknown option `--jsno` before the command: did you mean `--json`? (see `imagegen --help`)\n')
    expect((await cli(dir, ['--json', '--help'])).stdout).toContain('--json')
    expect((await cli(dir, ['--json', '--version'])).code).toBe(0)
  })
})

describe('the cursor while the progress bar draws', () => {
  let server: AtlasServer
  beforeAll(async () => {
    // every prediction stays `processing`: a signal always comes while the bar is up
    server = await startAtlasServer({ apiKey: API_KEY, latencyMs: 10 })
    server.options.intercept = ({ method, path }) => {
      const id = /\/prediction\/(pred_\d+)$/.exec(path)?.[1]
      return method === 'GET' && id ? { status: 200, body: { code: 200, message: 'success', data: { id, status: 'processing' } } } : 'continue'
    }
  })
  afterAll(() => server.close())

  for (const [signal, exit] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`is hidden on a TTY and shown again when ${signal} stops generate`, async () => {
      const dir = project({ 'art.images.yaml': art(['sea']) }, { pollIntervalMs: 10 })
      let stop: ((name: 'SIGINT' | 'SIGTERM') => void) | undefined
      let written = ''
      // the signal comes once the image is in flight, as the bar shows
      const write = (chunk: string) => {
        if (chunk.includes(' 1 in flight')) setImmediate(() => stop?.(signal))
        written += chunk
        return true
      }
      const result = await cli(dir, ['generate'], {
        env: { ATLASCLOUD_API_KEY: API_KEY, ATLASCLOUD_BASE_URL: server.url },
        onSignal: (listener) => ((stop = listener), () => (stop = undefined)),
        terminal: { interactive: true, stderr: { write, columns: 80 } as unknown as Terminal['stderr'] },
      })
      expect(result.code).toBe(exit)
      expect(written.startsWith(HIDE_CURSOR)).toBe(true)
      expect(written.split(HIDE_CURSOR)).toHaveLength(2)
      expect(written.endsWith(`\r\x1b[2K${SHOW_CURSOR}`)).toBe(true)
      expect(written.split(SHOW_CURSOR)).toHaveLength(2)
    })
  }

  for (const [how, end, code] of [['a second Ctrl-C', 'process.exit(130)', 130], ['an error nobody catches', "throw new Error('boom')", 1]] as const) {
    it(`is shown again when ${how} ends the process while the bar is up`, async () => {
      const script = await bundleScript(
        `import { writeSync } from 'node:fs'
import { barReporter } from '../src/cli/progress'
const stderr = { write: (chunk) => (writeSync(1, chunk), true), columns: 80 }
barReporter({ out() {}, err() {}, stderr, interactive: true }, () => false).onEvent({ type: 'start', total: 2 })
${end}`,
        `cursor-${code}`,
      )
      const result = await new Promise<Output>((resolve) =>
        execFile(process.execPath, [script], (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr })),
      )
      expect(result.code).toBe(code)
      expect(result.stdout).toMatch(new RegExp(`^\\${HIDE_CURSOR}\\r\\x1b\\[2Kimagegen ░+ 0/2 · 0 in flight · 0\\.0s\\${SHOW_CURSOR}$`.replaceAll('[?', '\\[\\?')))
    })
  }
})

describe('colours', () => {
  const dir = project({ 'art.images.yaml': art(['sea']) })
  const plain = '[imagegen] 1 image is not in the cache: run `imagegen generate`, then commit .imagegen/.\n'

  it('errors are red with FORCE_COLOR=1 though stderr is a pipe, the rest plain; NO_COLOR wins over FORCE_COLOR; neither on a pipe: none', async () => {
    const result = await bin(dir, ['status'], { FORCE_COLOR: '1' })
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(`imagegen: 1 entry (1 image) in 1 manifest — 0 cached, 1 missing\n\x1b[31m${plain.trimEnd()}\x1b[39m\n`)
    expect(result.stdout).not.toContain('\x1b[')
    // picocolors: NO_COLOR (or --no-color) turns colours off whatever else is set
    expect((await bin(dir, ['status'], { NO_COLOR: '1', FORCE_COLOR: '1' })).stderr).toBe(`imagegen: 1 entry (1 image) in 1 manifest — 0 cached, 1 missing\n${plain}`)
    expect((await bin(dir, ['status'])).stderr).toBe(`imagegen: 1 entry (1 image) in 1 manifest — 0 cached, 1 missing\n${plain}`)
  })

  it('warnings are yellow with FORCE_COLOR=1', async () => {
    const other = project({ 'art.images.yaml': art(['sea']) })
    expect((await bin(other, ['generate'])).code).toBe(0)
    rmSync(join(other, 'art.images.yaml'))
    writeFileSync(join(other, 'hero.images.yaml'), 'prompt: A hero\nwidth: 64\nheight: 64\n')
    writeFileSync(join(other, 'imagegen.config.json'), JSON.stringify({ provider: 'atlas' }))
    const result = await bin(other, ['prune', '--dry-run'], { FORCE_COLOR: '1' })
    expect(result.stderr.split('\n')[1]).toBe(
      '\x1b[33mimagegen: kept 1 unused entry made by `placeholder`, while the configured provider is `atlas`. ' +
        'If the plugin uses another provider, set `provider` in imagegen.config.json so both agree; to delete them anyway, pass `--any-provider`.\x1b[39m',
    )
  })
})

describe('did-you-mean', () => {
  it('counts a swap of two neighbours as one edit', () => {
    expect(didYouMean('fromat', FIELD_NAMES)).toBe('format')
    expect(didYouMean('wdith', FIELD_NAMES)).toBe('width')
    expect(didYouMean('stauts', ['generate', 'status', 'prune', 'verify'])).toBe('status')
    expect(didYouMean('banana', FIELD_NAMES)).toBeUndefined()
  })

  it('suggests `format` for a manifest field spelt `fromat`', async () => {
    const dir = project({ 'bad.images.yaml': 'images:\n  sea:\n    prompt: x\n    fromat: webp\n' })
    const result = await cli(dir, ['status'])
    expect(result.code).toBe(2)
    expect(result.stderr).toBe('[imagegen] bad.images.yaml:4:5: unknown field `fromat` in `images.sea`: did you mean `format`?\n')
  })
})

describe('display width', () => {
  it('tables pad by terminal columns: CJK names line up', async () => {
    expect(table([['桜の木', 'a', 'x'], ['sea', 'b', 'y']])).toEqual(['桜の木  a  x', 'sea     b  y'])
    const dir = project({ 'art.images.yaml': art(['桜の木', 'sea']) })
    const result = await cli(dir, ['status'])
    const rows = result.stdout.trimEnd().split('\n').map((line) => /^(.*?)([0-9a-f]{12})  missing$/u.exec(line)!)
    expect(rows.map(([, before]) => before)).toEqual(['art.images.yaml:5:3  桜の木  ', 'art.images.yaml:7:3  sea     '])
  })

  it('clips between graphemes, by columns: no emoji is cut in half', async () => {
    expect(clipColumns(`${'a'.repeat(58)}🌊🌊`, 60)).toBe(`${'a'.repeat(58)}…`)
    expect(clipColumns(`${'a'.repeat(57)}🌊🌊`, 60)).toBe(`${'a'.repeat(57)}🌊…`)
    expect(clipColumns('日本語の文章です', 7)).toBe('日本語…')
    expect(clipColumns('family 👩‍👩‍👧 photo', 10)).toBe('family 👩‍👩‍👧…')
    expect(clipColumns('  two\n lines  ', 60)).toBe('two lines')
    const dir = project({ 'art.images.yaml': `images:\n  sea:\n    prompt: "${'a'.repeat(58)}🌊🌊 waves"\n    width: 64\n    height: 64\n` })
    const plan = await cli(dir, ['generate', '--dry-run'])
    expect(plan.stdout).toMatch(new RegExp(`  new  ${'a'.repeat(58)}…\\n$`))
  })

  it("clips messages (a service's text) between graphemes too: no lone surrogate", () => {
    expect(clip(`${'a'.repeat(8)}🌊🌊🌊`, 10)).toBe(`${'a'.repeat(8)}🌊…`)
    expect(clip('👩‍👩‍👧👩‍👩‍👧👩‍👩‍👧', 2)).toBe('👩‍👩‍👧…')
    expect(clip('short 🌊', 60)).toBe('short 🌊')
  })
})

describe('text from a manifest or a service on a terminal', () => {
  it('cannot clear the screen, retitle the window, plant a link or reverse the line; --json keeps the data', async () => {
    const name = 'e\x1b[2Jvil\x1b]0;title\x07'
    const prompt = 'x\x1b]8;;http://evil\x07Y\u202egnp.exe'
    const dir = project({ 'art.images.yaml': `images:\n  ${JSON.stringify(name)}:\n    prompt: ${JSON.stringify(prompt)}\n    width: 64\n    height: 64\n` })
    const text = await bin(dir, ['generate', '--dry-run'], { NO_COLOR: '1' })
    const shown = text.stdout + text.stderr
    expect(shown).not.toMatch(/[\x1b\x07\u202e]/)
    expect(text.stdout).toContain('e\\u001b[2Jvil\\u001b]0;title\\u0007')
    expect(text.stdout).toContain('x\\u001b]8;;http://evil\\u0007Y\\u202egnp.exe')
    const json = await bin(dir, ['status', '--json'])
    expect(json.stdout).not.toMatch(/[\x1b\x07\u202e]/)
    expect(JSON.parse(json.stdout).entries[0].name).toBe(name)
  })
})
