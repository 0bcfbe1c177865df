import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { beforeAll, describe, expect, it } from 'vitest'
import { listFiles, tempDir } from './helpers/temp'
import { writeProject } from './helpers/vite-project'

const repo = join(import.meta.dirname, '..')
const npm = (cwd: string, ...args: string[]) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } })

/** A project outside this repository that installs the packed package, as a user would. */
let project: string

beforeAll(() => {
  const packs = tempDir('imagegen-pack-')
  npm(repo, 'pack', '--pack-destination', packs)
  const tarball = readdirSync(packs).find((f) => f.endsWith('.tgz'))!
  project = tempDir('imagegen-user-')
  // The same bundler versions this repository tests with, so the install can come from npm's cache.
  const version = (name: string) => JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')).version
  const bundlers = ['vite', 'rollup', 'webpack', 'esbuild', '@rspack/core'].map((name) => `${name}@${version(name)}`)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-site', private: true, type: 'module' }))
  npm(project, 'install', join(packs, tarball), ...bundlers)
}, 300_000)

describe('the packed package', () => {
  it('ships the built entries and the client types, and no sources or tests', () => {
    const files = listFiles(join(project, 'node_modules/unplugin-imagegen'))
    for (const entry of ['index', 'vite', 'rollup', 'webpack', 'esbuild', 'rspack']) {
      expect(files).toContain(`dist/${entry}.js`)
      expect(files).toContain(`dist/${entry}.cjs`)
      expect(files).toContain(`dist/${entry}.d.ts`)
    }
    expect(files).toContain('client.d.cts')
    expect(files).toContain('dist/cli.js')
    expect(files).toContain('LICENSE')
    expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/'))).toBe(false)
  })

  it('bundles zod/mini: not a dependency, not named by its types, its licence shipped', () => {
    const installed = join(project, 'node_modules/unplugin-imagegen')
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'))
    expect(Object.keys(manifest.dependencies)).not.toContain('zod')
    const types = listFiles(join(installed, 'dist')).filter((f) => /\.d\.c?ts$/.test(f))
    expect(types.filter((f) => /from ['"]zod/.test(readFileSync(join(installed, 'dist', f), 'utf8')))).toEqual([])
    expect(readFileSync(join(installed, 'THIRD_PARTY_NOTICES.md'), 'utf8')).toContain('Copyright (c) 2025 Colin McDonnell')
  })

  it('loads every entry through ESM import and CJS require', () => {
    const script = `
      const require = (await import('node:module')).createRequire(import.meta.url)
      for (const entry of ['vite', 'rollup', 'webpack', 'esbuild', 'rspack']) {
        const esm = (await import('unplugin-imagegen/' + entry)).default
        const cjs = require('unplugin-imagegen/' + entry)
        if (typeof esm !== 'function' || typeof (cjs.default ?? cjs) !== 'function') throw new Error(entry)
      }
      const core = await import('unplugin-imagegen')
      console.log(typeof core.parseManifest, typeof require('unplugin-imagegen').parseManifest)
    `
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8' }).trim()).toBe('function function')
  })

  it('ships its code once: the CJS entries and the CLI use the ESM chunks', () => {
    const dist = join(project, 'node_modules/unplugin-imagegen/dist')
    const code = readdirSync(dist).filter((f) => /\.c?js$/.test(f))
    expect(code.filter((f) => f.includes('chunk-') && f.endsWith('.cjs'))).toEqual([])
    expect(code.filter((f) => readFileSync(join(dist, f), 'utf8').includes('ImageCache = class'))).toHaveLength(1)
  })

  it('is typed right for node10, node16 (CJS and ESM) and bundlers, and lints clean (attw, publint)', async () => {
    // attw exits non-zero on any problem
    expect(execFileSync(join(repo, 'node_modules/.bin/attw'), ['--pack', repo], { encoding: 'utf8' })).toContain('No problems found')
    const { publint } = await import('publint')
    expect((await publint({ pkgDir: join(project, 'node_modules/unplugin-imagegen') })).messages).toEqual([])
    // the call attw's "Missing export =" was about: a `.cts` config under node16
    writeProject(project, {
      'config.cts': "import imagegen = require('unplugin-imagegen/vite')\nexport const plugins = [imagegen({ provider: 'placeholder' })]\n",
      'tsconfig.cts.json': JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', skipLibCheck: true, types: [] }, files: ['config.cts'] }),
    })
    expect(() => execFileSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.cts.json'], { cwd: project, encoding: 'utf8' })).not.toThrow()
  }, 120_000)

  it('exports from its root only the plugin and the documented API (the README\'s "API" table)', () => {
    const script = `console.log(Object.keys(await import('unplugin-imagegen')).sort().join(' '))`
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8' }).trim()).toBe(
      'ImagegenError ManifestError ProviderError createAtlasProvider createPlaceholderProvider default keySpec openProject parseManifest unplugin unpluginFactory',
    )
  })

  it.each([
    ['rollup', 'rollup.config.mjs (ESM)', ['node_modules/.bin/rollup', '-c', 'rollup.config.mjs']],
    ['webpack', 'build-webpack.cjs (CJS, `.default`)', ['build-webpack.cjs']],
    ['rspack', 'build-rspack.cjs (CJS)', ['build-rspack.cjs']],
    ['esbuild', 'build-esbuild.mjs (ESM)', ['build-esbuild.mjs']],
  ])('builds with %s through %s', async (bundler, _, command) => {
    const out = `out-${bundler}`
    writeProject(project, {
      'entry.js': "import hero from './hero.images.yaml'\nglobalThis.hero = hero\n",
      'hero.images.yaml': 'prompt: A lighthouse at dusk\nwidth: 128\nheight: 64\n',
      'rollup.config.mjs': `import imagegen from 'unplugin-imagegen/rollup'\nexport default { input: 'entry.js', output: { dir: '${out}', format: 'es' }, plugins: [imagegen({ provider: 'placeholder' })] }\n`,
      'build-webpack.cjs': `const webpack = require('webpack')\nconst imagegen = require('unplugin-imagegen/webpack').default\nwebpack({ mode: 'production', context: __dirname, entry: './entry.js', output: { path: __dirname + '/${out}', publicPath: '/static/' }, plugins: [imagegen({ provider: 'placeholder' })] }, (err, stats) => { if (err || stats.hasErrors()) { console.error(err || stats.toString()); process.exit(1) } })\n`,
      'build-rspack.cjs': `const { rspack } = require('@rspack/core')\nconst imagegen = require('unplugin-imagegen/rspack')\nrspack({ mode: 'production', context: __dirname, entry: './entry.js', output: { path: __dirname + '/${out}', publicPath: '/static/' }, plugins: [imagegen({ provider: 'placeholder' })] }, (err, stats) => { if (err || stats.hasErrors()) { console.error(err || stats.toString()); process.exit(1) } })\n`,
      'build-esbuild.mjs': `import { build } from 'esbuild'\nimport imagegen from 'unplugin-imagegen/esbuild'\nawait build({ entryPoints: ['entry.js'], bundle: true, outdir: '${out}', publicPath: '/static/', plugins: [imagegen({ provider: 'placeholder' })] })\n`,
    })
    const [file, ...args] = command as string[]
    execFileSync(file!.startsWith('node_modules') ? join(project, file!) : process.execPath, file!.startsWith('node_modules') ? args : [file!, ...args], { cwd: project, encoding: 'utf8', stdio: 'pipe' })
    const files = listFiles(join(project, out))
    const image = files.find((f) => f.endsWith('.webp'))!
    expect(image).toBeDefined()
    const js = files.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(project, out, f), 'utf8')).join('\n')
    expect(js).toContain(image.split('/').pop())
    const meta = await sharp(join(project, out, image)).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 128, 64])
  })

  it('builds a Vite site that imports manifests through unplugin-imagegen/vite', () => {
    writeProject(project, {
      'index.html': '<!doctype html><img id="hero"><script type="module" src="/main.js"></script>',
      'main.js': "import hero from './hero.images.yaml'\ndocument.getElementById('hero').src = hero.src\n",
      'hero.images.yaml': 'prompt: A lighthouse at dawn\nwidth: 128\nheight: 64\n',
      'vite.config.js': "import imagegen from 'unplugin-imagegen/vite'\nexport default { plugins: [imagegen({ provider: 'placeholder' })] }\n",
    })
    const output = execFileSync(join(project, 'node_modules/.bin/vite'), ['build'], { cwd: project, encoding: 'utf8' })
    expect(output).toMatch(/imagegen: 1 image — 0 cached, 1 generated/)
    const assets = listFiles(join(project, 'dist/assets'))
    const image = assets.find((f) => f.endsWith('.webp'))!
    const js = readFileSync(join(project, 'dist/assets', assets.find((f) => f.endsWith('.js'))!), 'utf8')
    expect(js).toContain(`/assets/${image}`)
    return sharp(join(project, 'dist/assets', image))
      .metadata()
      .then((meta) => expect([meta.format, meta.width, meta.height]).toEqual(['webp', 128, 64]))
  })
})
