import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
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

  it('spare a warm build loading code it does not run: no yaml, zod, p-limit, undici or sharp, nor the Atlas client or the gallery', async () => {
    const root = viteProject()
    await viteBuild(root, { provider: 'placeholder' })
    // A fresh process runs `vite build` with the package as published (dist/). Every module it loads is logged: ESM by
    // a resolve hook, CommonJS by require.cache. zod/mini is bundled into dist/, so no module of zod may load on its own.
    const dist = join(import.meta.dirname, '../dist/vite.js')
    const script = join(tempDir(), 'warm-build.mjs')
    writeFileSync(
      script,
      `import { createRequire } from 'node:module'
      import { build } from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('vite')).href)}
      import imagegen from ${JSON.stringify(pathToFileURL(dist).href)}
      const root = ${JSON.stringify(root)}
      await build({ root, logLevel: 'silent', configFile: false, plugins: [imagegen({ root, provider: 'placeholder', mode: 'offline' })],
        build: { outDir: root + '/out', rollupOptions: { input: root + '/src/main.js' } } })
      console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)))\n`,
    )
    const log = join(tempDir(), 'imported.log')
    const hooks = join(tempDir(), 'hooks.mjs')
    writeFileSync(hooks, `import { appendFileSync } from 'node:fs'\nexport async function resolve(specifier, context, next) {\n  const resolved = await next(specifier, context)\n  appendFileSync(${JSON.stringify(log)}, resolved.url + '\\n')\n  return resolved\n}\n`)
    writeFileSync(log, '')
    const register = `data:text/javascript,import { register } from 'node:module'; register(${encodeURIComponent(JSON.stringify(`file://${hooks}`))})`
    const run = spawnSync(process.execPath, ['--import', register, script], { encoding: 'utf8' })
    expect(run.stderr).toBe('')
    const required = JSON.parse(run.stdout) as string[]
    const imported = readFileSync(log, 'utf8').split('\n')
    expect(readdirSync(join(root, 'out/assets')).filter((file) => file.endsWith('.webp'))).toHaveLength(4)
    expect(imported).toContainEqual(expect.stringMatching(/\/node_modules\/unplugin\//)) // the log sees the packages the plugin imports
    expect([...imported, ...required].filter((path) => /\/node_modules\/(yaml|zod|p-limit|undici|sharp|@img)\//.test(path))).toEqual([])
    // the package's own chunks: none with the Atlas client (its submit endpoint) or the gallery's page
    const chunks = [...new Set(imported.filter((url) => url.startsWith(pathToFileURL(join(import.meta.dirname, '../dist/')).href)))]
    expect(chunks.length).toBeGreaterThan(1)
    const loaded = chunks.map((url) => readFileSync(new URL(url), 'utf8'))
    expect(loaded.filter((code) => code.includes('generateImage') || code.includes('imagegen gallery</title>'))).toEqual([])
  })
})
