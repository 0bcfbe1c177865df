import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ManifestError } from '../src/core/errors'
import { parseManifest } from '../src/core/manifest'

const fixtures = join(import.meta.dirname, '../fixtures')
const manifests = readdirSync(fixtures).filter((name) => /\.images\.ya?ml$/.test(name))
const parse = (name: string) => parseManifest(readFileSync(join(fixtures, name)), name)

describe('error fixtures', () => {
  const errors = manifests.filter((name) => name.startsWith('error-'))
  it('has a fixture for each kind of mistake', () => expect(errors.length).toBeGreaterThanOrEqual(12))

  it.each(errors)('%s', (name) => {
    let error: unknown
    try {
      parse(name)
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ManifestError)
    const message = (error as ManifestError).message
    // Every problem names the file, a line and a column; no stack frames leak into the text.
    for (const problem of (error as ManifestError).problems) {
      expect(problem.location.file).toBe(name)
      expect(problem.location.line).toBeGreaterThan(0)
    }
    // errors as data: a code, and the first problem's place for bundlers' overlays
    expect((error as ManifestError).code).toBe('MANIFEST')
    expect((error as ManifestError).loc).toEqual((error as ManifestError).problems[0]!.location)
    expect(message).not.toContain('[imagegen]')
    expect(message).toContain(`${name}:${(error as ManifestError).problems[0]!.location.line}:`)
    expect(message).not.toMatch(/\n\s+at /)
    expect(message).toMatchSnapshot()
  })
})

describe('valid manifests', () => {
  it('reads a single image with the built-in defaults', () => {
    const manifest = parse('hero.images.yaml')
    expect(manifest.kind).toBe('single')
    expect(manifest.entries).toEqual([
      {
        spec: {
          prompt: 'A beautiful landscape with mountains and lake, golden hour',
          model: 'black-forest-labs/flux-schnell',
          width: 1024,
          height: 576,
          alt: 'Mountains over a still lake at sunset',
          format: 'webp',
          quality: 80,
          placeholder: 'none',
        },
        location: { file: 'hero.images.yaml', line: 1, column: 1 },
      },
    ])
  })

  it('merges defaults under each entry of a collection, input field by field', () => {
    const manifest = parse('art.images.yaml')
    expect(manifest.kind).toBe('collection')
    expect(manifest.entries.map((e) => e.name)).toEqual(['banner', 'avatar', 'hero-wide'])
    const [banner, avatar, wide] = manifest.entries.map((e) => e.spec)
    expect(banner).toMatchObject({ width: 1536, height: 512, widths: [768, 1024], alt: banner!.prompt })
    expect(avatar).toMatchObject({ width: 768, height: 768, seed: 42, steps: 4, guidance_scale: 3.5, format: 'png' })
    expect(wide!.input).toEqual({ enable_safety_checker: true, num_images: 1 })
    expect(wide!.prompt).toBe('Wide panorama of rolling hills under a pale morning sky')
    expect(manifest.entries[1]!.location).toEqual({ file: 'art.images.yaml', line: 12, column: 3 })
  })

  it('accepts flow style and .yml spelling alike', () => {
    const manifest = parseManifest('images: { a: { prompt: x, width: 512 } }', 'flow.images.yml')
    expect(manifest.entries[0]).toMatchObject({ name: 'a', spec: { prompt: 'x', width: 512, height: 1024 } })
  })

  it('reports every problem of a file at once', () => {
    expect(() => parse('error-several.images.yaml')).toThrow(/^\d+ problems in error-several\.images\.yaml/)
    try {
      parse('error-several.images.yaml')
    } catch (error) {
      expect((error as ManifestError).problems.length).toBeGreaterThanOrEqual(7)
    }
  })
})
