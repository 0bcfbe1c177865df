/**
 * What the product reads from the cache (issue 14, items 5 and 10): an entry is taken only if its record is valid and
 * its image is a regular file of the recorded size and hash. A damaged entry (a Git LFS pointer, a truncated or
 * rewritten file, a symlink a hostile commit planted) fails the build by name and is never bought again on its own.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { run } from '../src/cli/run'
import { DamagedEntryError, ImageCache } from '../src/core/cache'
import { openProject } from '../src/index'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { bundleScript } from './helpers/child-script'
import { filesContaining, listFiles } from './helpers/temp'
import { viteBuild, viteProject, writeProject } from './helpers/vite-project'

const API_KEY = 'sk-imagegen-trust-cache-7d2e'
const LFS_POINTER = 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n'
let server: AtlasServer

beforeAll(async () => {
  server = await startAtlasServer({ apiKey: API_KEY, latencyMs: 10 })
})
afterAll(() => server.close())
beforeEach(() => server.reset())

/** `imagegen …` in this process, in `cwd`, against the test server. */
async function cli(cwd: string, args: string[], extra: NodeJS.ProcessEnv = {}) {
  const output = { stdout: '', stderr: '' }
  const stderr = Object.assign(new PassThrough(), { isTTY: false, columns: 80 })
  const env = { PATH: process.env.PATH, ATLASCLOUD_BASE_URL: server.url, ATLASCLOUD_API_KEY: API_KEY, ...extra }
  const terminal = { out: (line: string) => void (output.stdout += `${line}\n`), err: (line: string) => void (output.stderr += `${line}\n`), stderr, interactive: false }
  const code = await run(args, { cwd, env, terminal })
  return { code, ...output }
}

/** A project whose four images are generated and cached; `image(entry)` is the cached file of a manifest's entry. */
async function cachedProject() {
  const root = viteProject({ 'imagegen.config.json': JSON.stringify({ pollIntervalMs: 5 }) })
  expect((await cli(root, ['generate'])).code).toBe(0)
  const project = openProject({}, { from: root, env: {} })
  const { entries } = await project.readAll(await project.findManifests())
  const image = (file: string, name?: string) => {
    const entry = entries.find((e) => e.location.file === file && e.name === name)!
    return join(root, '.imagegen/images', `${entry.key}.png`)
  }
  server.reset()
  return { root, entries, image }
}

describe('a damaged cache entry is never bought again on its own', () => {
  it('a Git LFS pointer in place of an image: a build with a key submits nothing and names `git lfs pull`', async () => {
    const { root, image } = await cachedProject()
    writeFileSync(image('src/hero.images.yaml'), LFS_POINTER)
    const error = await viteBuild(root, { apiKey: API_KEY, baseURL: server.url, pollIntervalMs: 5 }).then(() => undefined, (e: Error) => e)
    expect(error?.message).toContain('src/hero.images.yaml:1:1')
    expect(error?.message).toContain('is a Git LFS pointer')
    expect(error?.message).toContain('`git lfs pull`')
    expect(server.submitAttempts).toBe(0)
    expect(readFileSync(image('src/hero.images.yaml'), 'utf8')).toBe(LFS_POINTER)
    // and offline it is not "missing": the same damage, named
    const status = await cli(root, ['status'], { IMAGEGEN_OFFLINE: '1' })
    expect(status.code).toBe(1)
    expect(status.stderr).toContain('git lfs pull')
    expect(status.stdout + status.stderr).not.toMatch(/\bmissing\b/)
    expect(status.stdout).not.toContain('cached')
  })

  it('a truncated image: `generate` submits nothing and names the entry; `--force` pays once and leaves a good entry', async () => {
    const { root, entries, image } = await cachedProject()
    const banner = image('src/art.images.yaml', 'banner')
    writeFileSync(banner, readFileSync(banner).subarray(0, 100))
    const refused = await cli(root, ['generate'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('src/art.images.yaml:5:3 `banner`')
    expect(refused.stderr).toContain('the image has 100 bytes, its record says')
    expect(refused.stderr).toContain('`imagegen generate --force src/art.images.yaml#banner`')
    expect(server.submitAttempts).toBe(0)

    const unknown = await cli(root, ['generate', '--force', 'src/art.images.yaml#nope'])
    expect([unknown.code, server.submitAttempts]).toEqual([2, 0])
    expect(unknown.stderr).toContain('`--force src/art.images.yaml#nope` names no entry')

    const forced = await cli(root, ['generate', '--force', 'src/art.images.yaml#banner'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(server.submits).toHaveLength(1)
    expect(server.submits[0]).toMatchObject({ prompt: 'A paper-cut skyline' })
    const key = entries.find((e) => e.name === 'banner')!.key
    expect(new ImageCache(join(root, '.imagegen')).lookup(key, { rehash: true })?.record.width).toBe(128)
    expect(await cli(root, ['verify'])).toMatchObject({ code: 0 })
  })

  it('`imagegen verify` names a Git LFS pointer as such', async () => {
    const { root, image } = await cachedProject()
    writeFileSync(image('src/hero.images.yaml'), LFS_POINTER)
    const verify = await cli(root, ['verify'])
    expect(verify.code).toBe(1)
    expect(verify.stdout).toContain('the image is a Git LFS pointer, not the image')
    expect(verify.stderr).toContain('`git lfs pull`')
  })

  it('a file rewritten at the same size (bytes flipped) is damaged, not taken: its hash is checked on a new machine', async () => {
    const { root, entries, image } = await cachedProject()
    const hero = image('src/hero.images.yaml')
    const bytes = readFileSync(hero)
    bytes[bytes.length >> 1]! ^= 0xff
    writeFileSync(hero, bytes)
    const key = entries.find((e) => e.location.file === 'src/hero.images.yaml')!.key
    expect(() => new ImageCache(join(root, '.imagegen')).lookup(key)).toThrow(DamagedEntryError)
    expect(() => new ImageCache(join(root, '.imagegen')).lookup(key)).toThrow(/SHA-256 [0-9a-f]{12}… differs from the recorded/)
  })
})

describe('a hostile commit', () => {
  /** A project whose `hero` record (size 0, `format: original`) names a symlink to the environment of whoever reads it. */
  async function hostileProject(size = 0) {
    const root = viteProject({ 'src/hero.images.yaml': 'prompt: A lighthouse at dusk\nwidth: 96\nheight: 64\nformat: original\n', 'src/main.js': "import hero from './hero.images.yaml'\nglobalThis.__imagegen = { hero }\n" })
    const project = openProject({}, { from: root, env: {} })
    const [entry] = (await project.readAll([join(root, 'src/hero.images.yaml')])).entries
    const { key, pixels } = entry!
    writeProject(root, {
      [`.imagegen/images/${key}.json`]: JSON.stringify({
        version: 1, key, file: `${key}.png`, spec: pixels, provider: 'atlas', model: pixels.model, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
        contentType: 'image/png', size, width: 96, height: 64, format: 'png', completedAt: '2026-01-01T00:00:00.000Z',
      }),
    })
    symlinkSync('/proc/self/environ', join(root, `.imagegen/images/${key}.png`))
    return root
  }

  it('a symlink to /proc/self/environ fails `vite build` and esbuild offline, with no byte of the environment in the output; `status` does not say cached', async () => {
    const root = await hostileProject()
    const canary = `imagegen-canary-${process.pid}-${Date.now()}`
    // a real build in a child whose environment holds the canary (what /proc/self/environ shows is a process's own)
    const script = await bundleScript(
      `
      import { build } from 'vite'
      import * as esbuild from 'esbuild'
      import vite from '../src/vite'
      import esbuildPlugin from '../src/esbuild'
      const root = ${JSON.stringify(root)}
      const input = root + '/src/main.js'
      const results = {}
      try {
        await build({ root, configFile: false, logLevel: 'silent', plugins: [vite({ root })], build: { outDir: root + '/dist', rollupOptions: { input } } })
        results.vite = 'built'
      } catch (error) { results.vite = error.message }
      try {
        await esbuild.build({ entryPoints: [input], bundle: true, outdir: root + '/dist-esbuild', absWorkingDir: root, logLevel: 'silent', plugins: [esbuildPlugin({ root })] })
        results.esbuild = 'built'
      } catch (error) { results.esbuild = error.message }
      console.log(JSON.stringify(results))
      `,
      'trust-cache-hostile-build',
    )
    const child = spawnSync(process.execPath, [script], { env: { PATH: process.env.PATH, IMAGEGEN_OFFLINE: '1', IMAGEGEN_CANARY: canary }, encoding: 'utf8' })
    expect(child.stderr).not.toContain(canary)
    const results = JSON.parse(child.stdout) as Record<'vite' | 'esbuild', string>
    for (const message of [results.vite, results.esbuild]) {
      expect(message).toContain('src/hero.images.yaml:1:1')
      expect(message).toContain('1 cached image is damaged; nothing was submitted')
      expect(message).not.toContain(canary)
    }
    expect(filesContaining(root, canary)).toEqual([])
    expect(listFiles(root).filter((file) => file.startsWith('dist'))).not.toContainEqual(expect.stringMatching(/\.png$/))

    const status = await cli(root, ['status'], { IMAGEGEN_OFFLINE: '1', IMAGEGEN_CANARY: canary })
    expect(status.code).toBe(1)
    expect(status.stdout).not.toContain('cached')
    expect(status.stderr).toContain('1 cached image is damaged')
  })

  it('a symlink of the right size, a FIFO or a symlinked record in the cache is damaged, read without waiting', async () => {
    const root = await hostileProject(100)
    const project = openProject({}, { from: root, env: {} })
    const { key } = (await project.readAll([join(root, 'src/hero.images.yaml')])).entries[0]!
    const cache = new ImageCache(join(root, '.imagegen'))
    const image = join(root, `.imagegen/images/${key}.png`)
    expect(() => cache.lookup(key)).toThrow(/the image is a symbolic link, not a file/)
    rmSync(image)
    spawnSync('mkfifo', [image])
    expect(() => cache.lookup(key)).toThrow(/the image is not a regular file/)
    const record = join(root, `.imagegen/images/${key}.json`)
    rmSync(record)
    symlinkSync('/dev/zero', record)
    expect(() => cache.lookup(key)).toThrow(/the record cannot be read: it is a symbolic link/)
  })
})
