/**
 * Fixture-driven, in the style of unplugin-macros: every `fixtures/*.images.yaml` is loaded
 * through the plugin's context (the placeholder provider, no network) into a temp project.
 * Valid fixtures snapshot the module code a bundler receives, the same from a cold and a warm
 * cache; `error-*` fixtures snapshot the message and check that the error is located for
 * bundlers' overlays (`id`, `loc`).
 */
import { copyFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ImagegenContext } from '../src/core/context'
import { ManifestError } from '../src/core/errors'
import { Code } from '../src/core/module-code'
import { resolveOptions } from '../src/options'
import { tempDir } from './helpers/temp'

const FIXTURES = join(import.meta.dirname, '../fixtures')
const all = readdirSync(FIXTURES).filter((name) => /\.images\.ya?ml$/.test(name)).sort()
const valid = all.filter((name) => !name.startsWith('error-'))
const errors = all.filter((name) => name.startsWith('error-'))

/** A project with the fixture in it, and a plugin context over it as `vite build` would make it. */
function open(name: string, root = tempDir('imagegen-fixture-')) {
  writeFileSync(join(root, 'package.json'), '{}')
  copyFileSync(join(FIXTURES, name), join(root, name))
  const context = new ImagegenContext(resolveOptions({ provider: 'placeholder' }, { from: root, env: {} }), { info() {}, warn() {} })
  return { root, file: join(root, name), context }
}

/** A bundler that names each file by its emitted name, so the code does not depend on the temp folder. */
const urlFor = (file: { name: string }) => new Code(JSON.stringify(`/assets/${file.name}`))

describe('module code of each fixture', () => {
  it('covers single images, collections and odd entry names', () => expect(valid).toEqual(['art.images.yaml', 'hero.images.yaml', 'odd-names.images.yaml']))

  it.each(valid)('%s', async (name) => {
    const cold = open(name)
    const code = await cold.context.moduleCode(await cold.context.load(cold.file), urlFor)
    expect(code).toMatchSnapshot()
    // the same project again, its cache warm: the same module, and nothing generated
    const warm = open(name, cold.root)
    const logs: string[] = []
    const again = new ImagegenContext(warm.context.options, { info: (m) => logs.push(m), warn: (m) => logs.push(m) })
    expect(await again.moduleCode(await again.load(warm.file), urlFor)).toBe(code)
    again.finishBuild()
    expect(logs).toEqual([expect.stringMatching(/^imagegen: \d+ images? — (\d+) cached, 0 generated in /)])
  })
})

describe('error fixtures through the plugin', () => {
  it('has a fixture for each kind of mistake', () => expect(errors.length).toBeGreaterThanOrEqual(12))

  it.each(errors)('%s', async (name) => {
    const { file, context } = open(name)
    const error = await context.load(file).then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(ManifestError)
    const { id, loc, problems, message } = error as ManifestError
    expect(id).toBe(file)
    expect(loc).toEqual({ ...problems[0]!.location, file })
    // every problem names the file (as messages show it), a line and a column; no stack frames, no prefix
    for (const problem of problems) expect([problem.location.file, problem.location.line > 0]).toEqual([name, true])
    expect(message).toContain(`${name}:${problems[0]!.location.line}:`)
    expect(message).not.toMatch(/\n\s+at |\[imagegen\]/)
    expect(message).toMatchSnapshot()
  })
})
