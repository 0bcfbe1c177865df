import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ManifestError } from '../src/core/errors'
import { parseManifest } from '../src/core/manifest'

const fixtures = join(import.meta.dirname, '../fixtures')
const parse = (name: string) => parseManifest(readFileSync(join(fixtures, name)), name)

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
