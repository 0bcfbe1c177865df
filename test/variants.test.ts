/**
 * Choosing an image from the CLI (issue 16): `imagegen variants`, `imagegen pick`, and `prune` of the candidates not
 * picked, run in this process (`run()`) in temp projects against the loopback Atlas server, then a real `vite build`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { run } from '../src/cli/run'
import { keyEntries } from '../src/core/entries'
import { parseManifest } from '../src/core/manifest'
import { candidatesOf, MAX_VARIANT_SEED, pinSeed, variantSeed } from '../src/core/variants'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { filesContaining, tempDir } from './helpers/temp'
import { viteBuild, writeProject } from './helpers/vite-project'

const API_KEY = 'sk-imagegen-variants-7d41c2e9'
const ART = `# Site art
defaults:
  width: 64
  height: 64

images:
  # the banner, wide one day
  banner:
    prompt: A paper-cut skyline  # keep it simple
  avatar:
    prompt: A robot mascot
`
const HERO = 'prompt: A lighthouse at dusk\nwidth: 96\nheight: 64\n'

let server: AtlasServer
const transcript: string[] = []
const projects: string[] = []

beforeAll(async () => {
  server = await startAtlasServer({ apiKey: API_KEY, latencyMs: 20 })
})
afterAll(async () => {
  await server.close()
  for (const text of transcript) expect(text).not.toContain(API_KEY)
  for (const dir of projects) expect(filesContaining(dir, API_KEY)).toEqual([])
})
beforeEach(() => server.reset())

/** `imagegen …args` in `cwd`, with the test server and its key and nothing else from the environment. */
async function imagegen(cwd: string, ...args: string[]) {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(ATLASCLOUD_|IMAGEGEN_|CI$|FORCE_COLOR$)/.test(name)))
  const out = { stdout: '', stderr: '' }
  const stderr = Object.assign(new PassThrough(), { isTTY: false, columns: 80 })
  const terminal = { out: (line: string) => void (out.stdout += `${line}\n`), err: (line: string) => void (out.stderr += `${line}\n`), stderr, interactive: false }
  const code = await run(args, { cwd, env: { ...env, ATLASCLOUD_BASE_URL: server.url, ATLASCLOUD_API_KEY: API_KEY }, terminal })
  transcript.push(out.stdout, out.stderr)
  return { code, ...out, lines: out.stdout.split('\n').filter((line) => line !== '') }
}

function site(files: Record<string, string> = {}): string {
  const dir = tempDir('imagegen-variants-')
  projects.push(dir)
  writeProject(dir, {
    'imagegen.config.json': JSON.stringify({ pollIntervalMs: 10 }),
    'src/main.js': "import art from './art.images.yaml'\nglobalThis.__imagegen = { art }\n",
    'src/art.images.yaml': ART,
    ...files,
  })
  return dir
}

/** The keyed entries of the art manifest as it is now. */
async function artEntries(dir: string) {
  const file = join(dir, 'src/art.images.yaml')
  return keyEntries(parseManifest(readFileSync(file, 'utf8'), 'src/art.images.yaml'), { manifestPath: file, root: dir, provider: 'atlas' })
}

const cachedImages = (dir: string) => (existsSync(join(dir, '.imagegen/images')) ? readdirSync(join(dir, '.imagegen/images')).filter((f) => f.endsWith('.png')) : [])

describe('candidate seeds', () => {
  it('candidate 1 is the entry itself; the others derive from the spec without its seed, within 0..2³¹−1, and survive a pick', async () => {
    const dir = site()
    const [banner] = await artEntries(dir)
    const { seed: current, ...unseeded } = banner!.pixels
    // an entry without `seed:` uses the first derived seed
    expect(variantSeed(unseeded, 1)).toBe(current)
    const candidates = candidatesOf(banner!, 4)
    expect(candidates.map((c) => c.seed)).toEqual([current, variantSeed(unseeded, 2), variantSeed(unseeded, 3), variantSeed(unseeded, 4)])
    expect(candidates.map((c) => c.number)).toEqual([1, 2, 3, 4])
    expect(candidates[0]!.entry).toBe(banner)
    expect(new Set(candidates.map((c) => c.entry.key)).size).toBe(4)
    for (const c of candidates.slice(1)) {
      expect(c.seed).toBeGreaterThanOrEqual(0)
      expect(c.seed).toBeLessThanOrEqual(MAX_VARIANT_SEED)
      expect(c.entry.request.seed).toBe(c.seed)
      expect(c.entry.pixels).toEqual({ ...banner!.pixels, seed: c.seed })
    }
    // with candidate 3's seed pinned, the set is the same: 3 first, then the derived seeds it is not
    const picked = { ...banner!, spec: { ...banner!.spec, seed: candidates[2]!.seed } }
    const [again] = await keyEntries({ kind: 'collection', entries: [picked] }, { manifestPath: join(dir, 'src/art.images.yaml'), root: dir, provider: 'atlas' })
    expect(candidatesOf(again!, 4).map((c) => c.seed)).toEqual([candidates[2]!.seed, current, candidates[1]!.seed, candidates[3]!.seed])
  })

  it('pinSeed replaces a seed in place, adds one after a flow map\'s last field, and keeps CRLF and a file without a final newline', () => {
    const text = 'images:\n  a: { prompt: "x", seed: 3 }  # three\n  b: {prompt: y}\n'
    expect(pinSeed(text, 'a', 12)).toBe('images:\n  a: { prompt: "x", seed: 12 }  # three\n  b: {prompt: y}\n')
    expect(pinSeed(text, 'b', 12)).toBe('images:\n  a: { prompt: "x", seed: 3 }  # three\n  b: {prompt: y, seed: 12}\n')
    expect(pinSeed('prompt: x\r\nwidth: 64 # w\r\n', undefined, 7)).toBe('prompt: x\r\nwidth: 64 # w\r\nseed: 7\r\n')
    expect(pinSeed('prompt: x', undefined, 7)).toBe('prompt: x\nseed: 7')
    expect(pinSeed('images:\n    hills:\n        prompt: >-\n            Rolling hills\n    sea:\n        prompt: Sea\n', 'hills', 5)).toBe(
      'images:\n    hills:\n        prompt: >-\n            Rolling hills\n        seed: 5\n    sea:\n        prompt: Sea\n',
    )
  })
})

describe('imagegen variants → pick → vite build → prune', () => {
  it('makes 6 new candidates for 2 cached entries, none on a second run; pick pins one, the build makes no request; prune lists the 6 others', async () => {
    const dir = site()
    expect((await imagegen(dir, 'generate')).code).toBe(0)
    expect(server.submits).toHaveLength(2)
    const [banner, avatar] = await artEntries(dir)

    server.reset()
    const first = await imagegen(dir, 'variants', 'src/art.images.yaml', '--count', '4')
    expect(first.code).toBe(0)
    expect(server.submits).toHaveLength(6)
    const expected = [banner!, avatar!].flatMap((entry) => candidatesOf(entry, 4).map((c) => ({ entry, c })))
    // the 6 submitted are exactly the candidates that are not the current images
    expect(server.submits.map((s) => `${s.prompt} ${s.seed}`).sort()).toEqual(
      expected.filter(({ c }) => !c.current).map(({ entry, c }) => `${entry.pixels.prompt} ${c.seed}`).sort(),
    )
    const row = (state: (current: boolean) => string) =>
      expected.map(({ entry, c }) => [`src/art.images.yaml#${entry.name}`, String(c.number), `seed ${c.seed}`, state(c.current), `.imagegen/images/${c.entry.key}.png`])
    const shown = (lines: string[]) => lines.map((line) => line.split(/ {2,}/))
    expect(shown(first.lines)).toEqual(row((current) => (current ? 'cached (current)' : 'generated')))
    const sheetLine = /imagegen: contact sheet: (.+\.html)\n/.exec(first.stderr)
    expect(sheetLine?.[1]).toBe('node_modules/.cache/unplugin-imagegen/variants/src_art.images.yaml.html')
    const sheetPath = join(dir, sheetLine![1]!)
    const sheet = readFileSync(sheetPath, 'utf8')
    const sources = [...sheet.matchAll(/<img src="([^"]+)"/g)].map((m) => resolve(join(sheetPath, '..'), m[1]!))
    expect(sources).toEqual(expected.map(({ c }) => join(dir, `.imagegen/images/${c.entry.key}.png`)))
    for (const { entry, c } of expected) expect(sheet).toContain(`imagegen pick src/art.images.yaml#${entry.name} ${c.seed}`)
    expect(cachedImages(dir)).toHaveLength(8)
    expect(readdirSync(join(dir, '.imagegen')).some((name) => name.endsWith('.html'))).toBe(false)

    server.reset()
    const again = await imagegen(dir, 'variants', 'src/art.images.yaml', '--count', '4', '--json')
    expect(again.code).toBe(0)
    expect(server.requests).toBe(0)
    const result = JSON.parse(again.stdout)
    expect(result).toMatchObject({ command: 'variants', ok: true, count: 4, dryRun: false, contactSheet: sheetLine![1], summary: { entries: 2, candidates: 8, cached: 8, toGenerate: 0, generated: 0 } })
    expect(result.entries.map((e: any) => [e.name, e.seed, e.candidates.map((c: any) => [c.number, c.seed, c.state, c.file])])).toEqual(
      [banner!, avatar!].map((entry) => [entry.name, entry.pixels.seed, candidatesOf(entry, 4).map((c) => [c.number, c.seed, 'cached', `.imagegen/images/${c.entry.key}.png`])]),
    )

    const chosen = candidatesOf(banner!, 4)[2]!
    const pick = await imagegen(dir, 'pick', 'src/art.images.yaml#banner', String(chosen.seed))
    expect(pick.code).toBe(0)
    expect(pick.stdout).toBe(`src/art.images.yaml#banner: seed ${banner!.pixels.seed} (derived) → ${chosen.seed}\n`)
    expect(pick.stderr).toContain(`its image is cached (.imagegen/images/${chosen.entry.key}.png): the next build makes no request`)
    expect(readFileSync(join(dir, 'src/art.images.yaml'), 'utf8')).toBe(`# Site art
defaults:
  width: 64
  height: 64

images:
  # the banner, wide one day
  banner:
    prompt: A paper-cut skyline  # keep it simple
    seed: ${chosen.seed}
  avatar:
    prompt: A robot mascot
`)
    expect((await artEntries(dir))[0]!.key).toBe(chosen.entry.key)

    server.reset()
    const build = await viteBuild(dir, { apiKey: API_KEY, baseURL: server.url })
    expect(server.requests).toBe(0)
    expect(build.values.art.banner).toMatchObject({ seed: chosen.seed, key: chosen.entry.key, prompt: 'A paper-cut skyline' })
    expect(build.values.art.avatar).toMatchObject({ seed: avatar!.pixels.seed, key: avatar!.key })

    // the candidate set survives the pick: nothing new to make
    const afterPick = await imagegen(dir, 'variants', 'src/art.images.yaml#banner')
    expect(afterPick.code).toBe(0)
    expect(server.requests).toBe(0)
    expect(shown(afterPick.lines).map((cells) => cells[2])).toEqual([chosen.seed, banner!.pixels.seed, candidatesOf(banner!, 4)[1]!.seed, candidatesOf(banner!, 4)[3]!.seed].map((s) => `seed ${s}`))

    const prune = await imagegen(dir, 'prune', '--dry-run')
    expect(prune.code).toBe(0)
    const unpicked = expected.filter(({ c }) => c.entry.key !== chosen.entry.key && c.entry.key !== avatar!.key).map(({ c }) => c.entry.key.slice(0, 12))
    expect(unpicked).toHaveLength(6)
    expect(prune.lines.map((line) => line.split(/ {2,}/).slice(0, 2)).sort()).toEqual(unpicked.map((key) => ['would remove', key]).sort())
    expect(prune.stderr).toContain('6 unused entries')
    expect(cachedImages(dir)).toHaveLength(8)
  })
})

describe('imagegen variants: bill guard, dry run, errors', () => {
  it('refuses 4 variants of one entry with --max-new 2 before any submit, with the bill guard\'s message', async () => {
    const dir = site({ 'src/hero.images.yaml': HERO })
    const refused = await imagegen(dir, 'variants', 'src/hero.images.yaml', '--max-new', '2')
    expect(refused.code).toBe(1)
    expect(server.submitAttempts).toBe(0)
    expect(server.requests).toBe(0)
    expect(refused.stderr).toContain('4 new images would be generated, more than `maxNewImages` allows (2). Nothing was submitted.')
    expect(refused.lines.map((line) => line.split(/ {2,}/)[3])).toEqual(['missing (current)', 'missing', 'missing', 'missing'])
    expect(cachedImages(dir)).toEqual([])
  })

  it('--dry-run shows the plan, submits nothing and writes no contact sheet', async () => {
    const dir = site({ 'src/hero.images.yaml': HERO })
    const dry = await imagegen(dir, 'variants', 'src/hero.images.yaml', '--count', '3', '--dry-run')
    expect(dry.code).toBe(0)
    expect(server.requests).toBe(0)
    expect(dry.stderr).toContain('imagegen: 3 candidates of 1 entry in src/hero.images.yaml — 0 cached, 3 to generate, within the limit of 25 new images')
    expect(dry.lines.map((line) => line.split(/ {2,}/).slice(0, 2).concat(line.split(/ {2,}/).slice(3)))).toEqual([
      ['src/hero.images.yaml', '1', 'new (current)', '-'], ['src/hero.images.yaml', '2', 'new', '-'], ['src/hero.images.yaml', '3', 'new', '-'],
    ])
    expect(existsSync(join(dir, 'node_modules/.cache/unplugin-imagegen/variants'))).toBe(false)
    expect(cachedImages(dir)).toEqual([])
  })

  it('names bad targets, counts and seeds as usage errors (exit 2), and changes no manifest', async () => {
    const dir = site({ 'src/hero.images.yaml': HERO })
    const elsewhere = join(tempDir('imagegen-elsewhere-'), 'far.images.yaml')
    writeProject(join(elsewhere, '..'), { 'far.images.yaml': HERO })
    const cases: [string[], string][] = [
      [['pick', elsewhere, '5'], `\`${elsewhere}\` is outside the project`],
      [['variants', 'src/art.images.yaml#baner'], '`src/art.images.yaml` has no entry `baner`: did you mean `banner`?'],
      [['variants', 'src/nope.images.yaml'], '`src/nope.images.yaml` does not exist'],
      [['variants', 'src/main.js'], '`src/main.js` is not a manifest'],
      [['variants', 'src/hero.images.yaml#hero'], '`src/hero.images.yaml` holds a single image: name it without `#hero`'],
      [['variants', 'src/hero.images.yaml', '--count', '0'], '`--count` must be a whole number from 1 to 64 (got `0`)'],
      [['variants'], '`imagegen variants` takes <manifest>[#<entry>] (got nothing)'],
      [['pick', 'src/art.images.yaml#banner', '-3'], 'unknown option `-3` for `imagegen pick`'],
      [['pick', 'src/art.images.yaml#banner', '4294967296'], 'the seed must be a whole number from 0 to 4294967295 (got `4294967296`)'],
      [['pick', 'src/art.images.yaml#banner', '1.5'], 'the seed must be a whole number from 0 to 4294967295 (got `1.5`)'],
      [['pick', 'src/art.images.yaml', '12'], '`src/art.images.yaml` holds 2 images: name one as `src/art.images.yaml#<entry>` (banner, avatar)'],
      [['pick', 'src/art.images.yaml#banner'], '`imagegen pick` takes <manifest>[#<entry>] <seed> (got `src/art.images.yaml#banner`)'],
    ]
    for (const [args, message] of cases) {
      const result = await imagegen(dir, ...args)
      expect(result.code, args.join(' ')).toBe(2)
      expect(result.stderr).toContain(message)
    }
    expect(server.requests).toBe(0)
    expect(readFileSync(join(dir, 'src/art.images.yaml'), 'utf8')).toBe(ART)
    expect(readFileSync(join(dir, 'src/hero.images.yaml'), 'utf8')).toBe(HERO)
    expect(readFileSync(elsewhere, 'utf8')).toBe(HERO)
  })

  it('pick on a single-image manifest writes the seed at the top level and says an uncached image will be generated', async () => {
    const dir = site({ 'src/hero.images.yaml': HERO })
    const pick = await imagegen(dir, 'pick', 'src/hero.images.yaml', '1234', '--json')
    expect(pick.code).toBe(0)
    expect(readFileSync(join(dir, 'src/hero.images.yaml'), 'utf8')).toBe(`${HERO}seed: 1234\n`)
    expect(JSON.parse(pick.stdout)).toMatchObject({ command: 'pick', ok: true, entry: { manifest: 'src/hero.images.yaml', name: null }, seed: 1234, previousSeedDerived: true, changed: true, cached: false, file: null })
    const text = await imagegen(dir, 'pick', 'src/hero.images.yaml', '99')
    expect(text.stdout).toBe('src/hero.images.yaml: seed 1234 → 99\n')
    expect(text.stderr).toContain('its image is not cached yet: the next build or `imagegen generate` where ATLASCLOUD_API_KEY is set will generate it')
    expect(readFileSync(join(dir, 'src/hero.images.yaml'), 'utf8')).toBe(`${HERO}seed: 99\n`)
    expect(server.requests).toBe(0)
  })
})
