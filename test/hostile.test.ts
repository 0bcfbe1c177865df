import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { tempDir } from './helpers/temp'
import { viteBuild } from './helpers/vite-project'

const corpus = join(import.meta.dirname, '../fixtures/hostile')
const API_KEY = 'sk-imagegen-hostile-0c1d'
let server: AtlasServer
let root: string

beforeAll(async () => {
  server = await startAtlasServer({ apiKey: API_KEY })
  // The project: the corpus in src/, plus the cases made here rather than committed.
  root = tempDir('imagegen-hostile-')
  const outside = tempDir('imagegen-outside-')
  writeFileSync(join(outside, 'secret.png'), 'not for upload')
  cpSync(corpus, join(root, 'src'), { recursive: true })
  symlinkSync(join(outside, 'secret.png'), join(root, 'src/escape.png'))
  mkdirSync(join(root, 'src/a-folder'))
  writeFileSync(join(root, 'src/huge-prompt.images.yaml'), `prompt: ${'a'.repeat(1024 * 1024)}\nwidth: 512\n`)
  // a named pipe: opening it to read would wait for a writer forever
  execFileSync('mkfifo', [join(root, 'src/a-fifo.png')])
  writeFileSync(join(root, 'src/image-fifo.images.yaml'), 'prompt: A fox in the style of the sketch\nimage: ./a-fifo.png\n')
})
afterAll(() => server.close())

const cases = [...readdirSync(corpus).filter((f) => f.endsWith('.images.yaml')), 'huge-prompt.images.yaml', 'image-fifo.images.yaml'].sort()

const expected: Record<string, RegExp> = {
  'alias-bomb.images.yaml': /alias-bomb\.images\.yaml:1:1: the YAML cannot be read: .*alias/i,
  'deep-nesting.images.yaml': /deep-nesting\.images\.yaml:\d+:\d+: .*(nested|deep)/i,
  'duplicate-keys.images.yaml': /duplicate-keys\.images\.yaml:3:1: `prompt` appears twice/,
  'huge-prompt.images.yaml': /huge-prompt\.images\.yaml:1:9: `prompt` is too long/,
  'image-absolute.images.yaml': /image-absolute\.images\.yaml:1:1: `image` must be a path relative to the manifest/,
  'image-fifo.images.yaml': /image-fifo\.images\.yaml:1:1: `image` must be a regular file of at most 20 MB; "\.\/a-fifo\.png" is a named pipe \(FIFO\)/,
  'image-folder.images.yaml': /image-folder\.images\.yaml:1:1: `image` must be a regular file of at most 20 MB; "\.\/a-folder" is a folder/,
  'image-missing.images.yaml': /image-missing\.images\.yaml:1:1: `image` file not found/,
  'image-not-an-image.images.yaml': /image-not-an-image\.images\.yaml:1:1: `image` must be a PNG, JPEG, WebP or AVIF image/,
  'image-parent.images.yaml': /image-parent\.images\.yaml:1:1: `image` (must stay inside the project root|file not found)/,
  'image-symlink.images.yaml': /image-symlink\.images\.yaml:2:1: `image` must stay inside the project root/,
  'tabs.images.yaml': /tabs\.images\.yaml:2:1: the YAML is invalid/,
  'wrong-types-everywhere.images.yaml': /15 problems in src\/wrong-types-everywhere\.images\.yaml/,
}

describe('hostile and broken manifests', () => {
  it('has an expectation for every case of the corpus', () => expect(Object.keys(expected).sort()).toEqual(cases))

  it.each(cases)('%s is refused with a located error, and nothing is sent', async (name) => {
    writeFileSync(join(root, 'src/main.js'), `import m from './${name}'\nglobalThis.__imagegen = { m }\n`)
    server.reset()
    const error = await viteBuild(root, { apiKey: API_KEY, baseURL: server.url, pollIntervalMs: 5 }).catch((e: unknown) => e as Error)
    expect(error).toBeInstanceOf(Error)
    const message = (error as Error).message
    // the bundler names the plugin once; the message itself carries no prefix of its own
    expect(message).toContain('[plugin unplugin-imagegen]')
    expect(message).not.toContain('[imagegen]')
    expect(message).toMatch(expected[name]!)
    // A clear message, not a dump: bounded in size, no stack frames, no secret contents.
    expect(message.length).toBeLessThan(10_000)
    expect(message).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/)
    expect(message).not.toContain('not for upload')
    expect(server.requests).toBe(0)
  }, 20_000)
})
