/**
 * Files a manifest names, and manifests the CLI is given, are read only when they are regular
 * files, and only up to a bound: a FIFO, a device or a huge file is refused at once, located,
 * before anything is read in full or sent (issue 14, item 14).
 */
import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, symlinkSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { run } from '../src/cli/run'
import { ManifestError } from '../src/core/errors'
import { atlas, build, entriesOf, useAtlasServer } from './helpers/atlas'
import { tempDir } from './helpers/temp'

const server = useAtlasServer()

/** `imagegen <args>` in this process, in `cwd`, offline: its exit code and what it printed. */
async function cli(cwd: string, args: string[]) {
  const output = { stdout: '', stderr: '' }
  const stderr = Object.assign(new PassThrough(), { isTTY: false, columns: 80 })
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: cwd, ATLASCLOUD_BASE_URL: server.url }
  const terminal = { out: (line: string) => void (output.stdout += `${line}\n`), err: (line: string) => void (output.stderr += `${line}\n`), stderr, interactive: false }
  const code = await run(args, { cwd, env, terminal })
  return { code, ...output }
}

function project(files: Record<string, string> = {}): string {
  const dir = tempDir('imagegen-trust-')
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  return dir
}

const mkfifo = (path: string) => execFileSync('mkfifo', [path])

describe('files that are not regular files', () => {
  it('a FIFO as `image:` is a located error, not a hang', async () => {
    const dir = project({ 'art.images.yaml': 'prompt: A fox in the style of the sketch\nimage: refs/sketch.png\n' })
    mkdirSync(join(dir, 'refs'))
    mkfifo(join(dir, 'refs/sketch.png'))
    const { code, stderr } = await cli(dir, ['status'])
    expect(code).toBe(2)
    expect(stderr).toContain('art.images.yaml:1:1: `image` must be a regular file of at most 20 MB; "refs/sketch.png" is a named pipe (FIFO)')
    expect(server.requests).toBe(0)
  })

  it('a FIFO given to the CLI as a manifest is an error, not a hang', async () => {
    const dir = project()
    mkfifo(join(dir, 'pipe.images.yaml'))
    const { code, stderr } = await cli(dir, ['status', 'pipe.images.yaml'])
    expect(code).toBe(2)
    expect(stderr).toContain('pipe.images.yaml:1:1: cannot read the manifest: a manifest is a regular file of at most 8 MB, and this one is a named pipe (FIFO)')
  })

  it('a manifest that is a symlink to /dev/zero is refused, naming the limit, without reading it', async () => {
    const dir = project()
    symlinkSync('/dev/zero', join(dir, 'zero.images.yaml'))
    const { code, stderr } = await cli(dir, ['status', 'zero.images.yaml'])
    expect(code).toBe(2)
    expect(stderr).toContain('zero.images.yaml:1:1: cannot read the manifest: a manifest is a regular file of at most 8 MB, and this one is a device')
  })

  it('a manifest over the limit is refused, naming its size and the limit', async () => {
    const dir = project()
    const fd = openSync(join(dir, 'big.images.yaml'), 'w')
    writeSync(fd, 'prompt: a\n')
    ftruncateSync(fd, 9 * 1024 * 1024)
    closeSync(fd)
    const { code, stderr } = await cli(dir, ['status', 'big.images.yaml'])
    expect(code).toBe(2)
    expect(stderr).toContain('big.images.yaml:1:1: cannot read the manifest: a manifest is a regular file of at most 8 MB, and this one is 9 MB')
  })
})

describe('reference images over the cap', () => {
  it('a reference over 20 MB is refused, located, before anything is uploaded', async () => {
    const dir = project()
    mkdirSync(join(dir, 'refs'))
    // a PNG signature, then 21 MB of a sparse file: every check but the size passes
    const fd = openSync(join(dir, 'refs/big.png'), 'w')
    writeSync(fd, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]))
    ftruncateSync(fd, 21 * 1024 * 1024)
    closeSync(fd)
    const yaml = 'defaults:\n  width: 64\n  height: 64\nimages:\n  fox:\n    prompt: A fox in the style of the sketch\n    image: refs/big.png\n'
    const error = await entriesOf(dir, yaml)
      .then((entries) => build(dir, atlas(server)).run(entries))
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ManifestError)
    expect((error as ManifestError).message).toBe('art.images.yaml:5:3: `image` must be a regular file of at most 20 MB; "refs/big.png" is 21 MB')
    expect(server.requests).toBe(0)
    expect(server.uploads).toEqual([])
  })
})

describe('raw `input` fields that would get past the key or the bill guard', () => {
  it('are located errors: no override of the spec (its size is checked against it), no several images for one', async () => {
    const { parseManifest } = await import('../src/core/manifest')
    const source = 'prompt: x\nwidth: 64\nheight: 64\ninput:\n  num_images: 4\n  width: 1024\n  model: some/expensive-model\n  enable_safety_checker: false\n'
    const error = (() => {
      try {
        parseManifest(source, 'a.images.yaml')
      } catch (e) {
        return e
      }
    })() as ManifestError
    expect(error).toBeInstanceOf(ManifestError)
    expect(error.problems.map((p) => `${p.location.line}:${p.location.column} ${p.message}`)).toEqual([
      "5:15 `input.num_images` would ask for several images, billed as many while counted as one: one spec is one image (use more entries)",
      "6:10 `input.width` would override the spec's own `width`, which the key, the size check and the bill are made from: set `width` itself",
      "7:10 `input.model` would override the spec's own `model`, which the key, the size check and the bill are made from: set `model` itself",
    ])
    expect(() => parseManifest('prompt: x\ninput:\n  enable_safety_checker: false\n  image: https://example.test/a.png\n', 'b.images.yaml')).not.toThrow()
  })
})

describe('YAML that is not plain data', () => {
  it('refuses unknown tags and a `__proto__` entry, located, instead of sending a literal prompt or losing an entry', async () => {
    const { parseManifest } = await import('../src/core/manifest')
    const problems = (source: string) => {
      try {
        parseManifest(source, 'a.images.yaml')
        return []
      } catch (e) {
        return (e as ManifestError).problems.map((p) => `${p.location.line}:${p.location.column} ${p.message}`)
      }
    }
    expect(problems('prompt: !env ATLASCLOUD_API_KEY\nwidth: 64\nheight: 64\n')).toEqual([
      '1:9 the tag `!env` is not supported: a manifest is plain YAML data (remove the tag; quote the text if it is meant literally)',
    ])
    expect(problems('prompt: !!js/function "f"\n')[0]).toMatch(/^1:9 the tag `!!js\/function` is not supported/)
    expect(problems('images:\n  "__proto__":\n    prompt: p\n  ok:\n    prompt: q\n')).toEqual([
      '2:3 `__proto__` cannot name an entry: the import is a JavaScript object, where it names no property',
    ])
    expect(problems('prompt: !!str 12\n')).toEqual([])
  })
})
