import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
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
})
