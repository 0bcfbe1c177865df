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

describe('large collections', () => {
  /** `n` entries of two lines each, after a header of 4 lines: entry `i`'s name is on line 5 + 2i. */
  const collection = (n: number, extra = '') =>
    `defaults:\n  width: 64\n  height: 64\nimages:\n${Array.from({ length: n }, (_, i) => `  image${i}:\n    prompt: A watercolor of thing ${i}\n`).join('')}${extra}`

  it('locates every entry of 20,000 at its own line', () => {
    const { entries } = parseManifest(collection(20_000), 'big.images.yaml')
    expect(entries).toHaveLength(20_000)
    expect(entries.at(-1)).toMatchObject({ name: 'image19999', spec: { prompt: 'A watercolor of thing 19999' }, location: { line: 5 + 2 * 19_999, column: 3 } })
    expect(entries[7_000]!.location.line).toBe(5 + 2 * 7_000)
  })

  it('names both lines of an entry name repeated among 20,000', () => {
    const error = (() => {
      try {
        parseManifest(collection(20_000, '  image7000:\n    prompt: again\n'), 'big.images.yaml')
      } catch (e) {
        return e
      }
    })() as ManifestError
    expect(error).toBeInstanceOf(ManifestError)
    expect(error.problems).toEqual([
      {
        location: { file: 'big.images.yaml', line: 5 + 2 * 20_000, column: 3 },
        message: `\`image7000\` appears twice in the same map (first at line ${5 + 2 * 7_000}): every field and entry name must be unique`,
      },
    ])
  })
})
