/**
 * The manifest module belongs to the plugin: an app's own rules for YAML files (a YAML loader or
 * plugin) and catch-all asset rules do not claim it, and Vite's `?raw` / `?url` keep their meaning.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { install } from './helpers/install'
import { viteBuild, viteProject } from './helpers/vite-project'
import imagegen from '../src/vite'

const FILES = {
  'src/hero.images.yaml': 'prompt: A lighthouse on a cliff at dusk\nwidth: 256\nheight: 128\n',
  'src/strings.yaml': 'title: Welcome\n',
  'src/main.js': "import hero from './hero.images.yaml'\nimport strings from './strings.yaml'\nexport { hero, strings }\n",
}

/** A Create-React-App-style `oneOf` whose last entry sends every file that is not JS/HTML/JSON to `asset/resource`. */
const CRA = [
  {
    oneOf: [
      { test: [/\.bmp$/, /\.gif$/, /\.jpe?g$/, /\.png$/], type: 'asset', parser: { dataUrlCondition: { maxSize: 10000 } } },
      { test: /\.[cm]?js$/, type: 'javascript/auto' },
      { exclude: [/^$/, /\.(js|mjs|jsx|ts|tsx)$/, /\.html$/, /\.json$/], type: 'asset/resource' },
    ],
  },
]

let deps: string
beforeAll(() => {
  deps = install('yaml-loader@^0.8', '@rollup/plugin-yaml@^4')
}, 120_000)
const resolveDep = (name: string) => createRequire(join(deps, 'package.json')).resolve(name)

let builds = 0
async function webpackLike(bundler: 'webpack' | 'rspack', root: string, rules: unknown[]): Promise<{ hero: any; strings: any; files: string[] }> {
  const compile = bundler === 'webpack' ? (await import('webpack')).default : (await import('@rspack/core')).rspack
  const { default: plugin } = bundler === 'webpack' ? await import('../src/webpack') : await import('../src/rspack')
  const outDir = join(root, `dist-${bundler}-${++builds}`)
  const config = {
    mode: 'production',
    context: root,
    target: 'node',
    entry: './src/main.js',
    output: { path: outDir, filename: 'main.cjs', publicPath: '/static/', library: { type: 'commonjs2' } },
    module: { rules },
    plugins: [plugin({ root, provider: 'placeholder' })],
  }
  await new Promise<void>((resolve, reject) => {
    ;(compile as any)(config, (error: Error | null, stats: any) => {
      if (error) return reject(error)
      if (stats.hasErrors()) return reject(new Error(stats.toJson({ all: false, errors: true }).errors.map((e: any) => e.message).join('\n')))
      resolve()
    })
  })
  return { ...createRequire(import.meta.url)(join(outDir, 'main.cjs')), files: readdirSync(outDir) }
}

const IMAGE = { width: 256, height: 128, format: 'webp', alt: 'A lighthouse on a cliff at dusk' }

describe.each(['webpack', 'rspack'] as const)('%s', (bundler) => {
  it('with a catch-all `asset/resource` rule: the import is the image object, and the image is emitted', async () => {
    const root = viteProject(FILES)
    const { hero, strings, files } = await webpackLike(bundler, root, CRA)
    expect(hero).toMatchObject({ ...IMAGE, src: expect.stringMatching(/^\/static\/[0-9a-f]+\.webp$/) })
    expect(files).toContain(hero.src.slice('/static/'.length))
    // the rule still has every other file
    expect(strings).toMatch(/^\/static\/[0-9a-f]+\.yaml$/)
  })

  it("with `yaml-loader` for the app's other YAML: the import is the image object", async () => {
    const root = viteProject(FILES)
    const { hero, strings, files } = await webpackLike(bundler, root, [{ test: /\.ya?ml$/, use: { loader: resolveDep('yaml-loader'), options: { asJSON: true } }, type: 'json' }])
    expect(hero).toMatchObject({ ...IMAGE, src: expect.stringMatching(/^\/static\/[0-9a-f]+\.webp$/) })
    expect(files).toContain(hero.src.slice('/static/'.length))
    expect(strings).toEqual({ title: 'Welcome' })
  })
})

describe('vite', () => {
  it("with `@rollup/plugin-yaml` for the app's other YAML: the import is the image object", async () => {
    const mod = await import(pathToFileURL(resolveDep('@rollup/plugin-yaml')).href)
    const yaml = mod.default.default ?? mod.default
    const root = viteProject({ ...FILES, 'src/main.js': `${FILES['src/main.js']}globalThis.__imagegen = { hero, strings }\n` })
    const { values, outDir } = await viteBuild(root, {}, { plugins: [imagegen({ root, provider: 'placeholder' }), yaml()] })
    expect(values.hero).toMatchObject({ ...IMAGE, src: expect.stringMatching(/^\/site\/assets\/[0-9a-f]{32}-256-[\w-]{8}\.webp$/) })
    expect(readdirSync(join(outDir, 'assets'))).toContain(values.hero.src.slice('/site/assets/'.length))
    expect(values.strings).toEqual({ title: 'Welcome' })
  })

  it('keeps the meaning of `?raw` and `?url` imports of a manifest', async () => {
    const root = viteProject({
      ...FILES,
      'src/main.js':
        "import hero from './hero.images.yaml'\nimport raw from './hero.images.yaml?raw'\nimport url from './hero.images.yaml?url'\nglobalThis.__imagegen = { hero, raw, url }\n",
    })
    // (a YAML file under 4 KB would be inlined by `?url`, as any asset)
    const { values, outDir } = await viteBuild(root, { provider: 'placeholder' }, { build: { assetsInlineLimit: 0 } })
    expect(values.raw).toBe(readFileSync(join(root, 'src/hero.images.yaml'), 'utf8'))
    expect(values.url).toMatch(/^\/site\/assets\/hero\.images-[\w-]{8}\.yaml$/)
    expect(readFileSync(join(outDir, values.url.slice('/site/'.length)), 'utf8')).toBe(values.raw)
    expect(values.hero).toMatchObject(IMAGE)
  })
})
