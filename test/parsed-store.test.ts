import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bundleScript } from './helpers/child-script'
import { tempDir } from './helpers/temp'
import { viteBuild, viteProject } from './helpers/vite-project'

const storeOf = (root: string) => join(root, 'node_modules/.cache/unplugin-imagegen/manifests')

describe('manifests already parsed', () => {
  it('are read from the store on the next build, and parsed afresh when they change', async () => {
    const root = viteProject()
    await viteBuild(root, { provider: 'placeholder' })
    const files = readdirSync(storeOf(root))
    expect(files).toHaveLength(2)

    // Doctor the stored alt text: a build that reads the store shows it, one that parses does not.
    for (const file of files) {
      const path = join(storeOf(root), file)
      writeFileSync(path, readFileSync(path, 'utf8').replaceAll('"alt":"A lighthouse"', '"alt":"from the store"'))
    }
    const warm = await viteBuild(root, { provider: 'placeholder', mode: 'offline' })
    expect(warm.values.hero.alt).toBe('from the store')

    const hero = join(root, 'src/hero.images.yaml')
    writeFileSync(hero, readFileSync(hero, 'utf8').replace('alt: A lighthouse', 'alt: A lighthouse, edited'))
    const edited = await viteBuild(root, { provider: 'placeholder', mode: 'offline' })
    expect(edited.values.hero.alt).toBe('A lighthouse, edited')
  })

  it('ignore a damaged store', async () => {
    const root = viteProject()
    const first = await viteBuild(root, { provider: 'placeholder' })
    for (const file of readdirSync(storeOf(root))) writeFileSync(join(storeOf(root), file), '{"manifest":{}}')
    const again = await viteBuild(root, { provider: 'placeholder', mode: 'offline' })
    expect(again.values).toEqual(first.values)
  })

  it('spare a warm build loading the YAML parser and the schema: neither yaml nor zod is loaded', async () => {
    const root = viteProject()
    await viteBuild(root, { provider: 'placeholder' })
    // A fresh process builds from the warm store through the core (the options are given resolved: validating
    // them is options.ts's business). Every module it loads is logged: ESM by a resolve hook, CommonJS by require.cache.
    const script = `
      import { createRequire } from 'node:module'
      import { join } from 'node:path'
      import { ImagegenContext } from '../src/core/context'
      import { createPlaceholderProvider } from '../src/providers/placeholder'
      const root = ${JSON.stringify(root)}
      const options = {
        root, configFile: undefined, cacheDir: join(root, '.imagegen'), derivedCacheDir: join(root, 'node_modules/.cache/unplugin-imagegen'),
        provider: createPlaceholderProvider(), cannotGenerate: undefined, concurrency: 4, maxNewImages: 0, dts: false, include: undefined, exclude: undefined,
      }
      const context = new ImagegenContext(options, { info() {}, warn() {} })
      context.startBuild('build')
      let images = 0
      for (const file of ['src/hero.images.yaml', 'src/art.images.yaml']) {
        const loaded = await context.load(join(root, file))
        if ((await context.moduleCode(loaded)).includes('.webp')) images += loaded.images.size
      }
      context.finishBuild()
      console.log(JSON.stringify({ images, required: Object.keys(createRequire(import.meta.url).cache) }))
    `
    const child = await bundleScript(script, 'warm-build-modules')
    const log = join(tempDir(), 'imported.log')
    const hooks = join(tempDir(), 'hooks.mjs')
    writeFileSync(hooks, `import { appendFileSync } from 'node:fs'\nexport async function resolve(specifier, context, next) {\n  const resolved = await next(specifier, context)\n  appendFileSync(${JSON.stringify(log)}, resolved.url + '\\n')\n  return resolved\n}\n`)
    writeFileSync(log, '')
    const register = `data:text/javascript,import { register } from 'node:module'; register(${encodeURIComponent(JSON.stringify(`file://${hooks}`))})`
    const run = spawnSync(process.execPath, ['--import', register, child], { encoding: 'utf8' })
    expect(run.stderr).toBe('')
    const { images, required } = JSON.parse(run.stdout) as { images: number; required: string[] }
    const imported = readFileSync(log, 'utf8').split('\n')
    expect(images).toBe(4)
    expect(imported).toContainEqual(expect.stringMatching(/\/node_modules\/p-limit\//)) // the log sees the packages the core imports
    expect([...imported, ...required].filter((path) => /\/node_modules\/(yaml|zod)\//.test(path))).toEqual([])
  })
})
