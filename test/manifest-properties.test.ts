import fc from 'fast-check'
import { stringify } from 'yaml'
import { describe, expect, it } from 'vitest'
import { ManifestError } from '../src/core/errors'
import { keySpec } from '../src/core/key'
import { parseManifest } from '../src/core/manifest'
import { COUNT_FIELDS, SPEC_FIELDS } from '../src/core/schema'

const dimension = fc.integer({ min: 4, max: 128 }).map((n) => n * 16)
const scalar = fc.oneof(fc.boolean(), fc.integer({ min: -1000, max: 1000 }), fc.string({ maxLength: 12 }))
const inputValue = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), scalar, { maxKeys: 3 }))

/** A valid image spec with the fields that decide pixels, some left out. */
const spec = fc.record(
  {
    prompt: fc.string({ minLength: 1, maxLength: 80 }).filter((p) => p.trim().length > 0),
    width: dimension,
    height: dimension,
    steps: fc.integer({ min: 1, max: 50 }),
    guidance_scale: fc.double({ min: 0, max: 30, noNaN: true, noDefaultInfinity: true }),
    seed: fc.integer({ min: 0, max: 0xffffffff }),
    // raw fields other than those the spec owns or that ask for several images (refused: trust-input.test.ts)
    input: fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !SPEC_FIELDS.has(k) && !COUNT_FIELDS.has(k)), inputValue, { minKeys: 1, maxKeys: 4 }),
    alt: fc.string({ maxLength: 20 }),
  },
  { requiredKeys: ['prompt'] },
)

/** The same object with its keys (at every depth) in another order. */
function reorder(value: unknown, order: number[]): unknown {
  if (Array.isArray(value)) return value.map((v) => reorder(v, order))
  if (value === null || typeof value !== 'object') return value
  const entries = Object.entries(value)
  const shuffled = entries.map((entry, i) => [order[i % order.length]! + i / 100, entry] as const).sort((a, b) => a[0] - b[0])
  return Object.fromEntries(shuffled.map(([, [k, v]]) => [k, reorder(v, order)]))
}

const keyOf = (yaml: string) => keySpec(parseManifest(yaml, 'p.images.yaml').entries[0]!.spec, 'atlas').key

describe('the key, for any spec', () => {
  it('does not depend on the order of keys in the YAML, nor on its style', () => {
    fc.assert(
      fc.property(spec, fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 8 }), (s, order) => {
        const block = stringify(s)
        const flow = stringify(reorder(s, order), { collectionStyle: 'flow', defaultStringType: 'QUOTE_DOUBLE' })
        const folded = stringify(reorder(s, [...order].reverse()), { defaultStringType: 'QUOTE_SINGLE', defaultKeyType: 'PLAIN' })
        const key = keyOf(block)
        expect(keyOf(flow)).toBe(key)
        expect(keyOf(folded)).toBe(key)
      }),
      { numRuns: 150 },
    )
  })

  it('is the same for a collection entry, whatever its name, and with the derived seed written out', () => {
    fc.assert(
      fc.property(spec, fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), (s, name) => {
        const { seed: _, ...unseeded } = s
        const single = keySpec(parseManifest(stringify(unseeded), 'a.images.yaml').entries[0]!.spec, 'atlas')
        const entry = parseManifest(stringify({ images: { [name]: unseeded } }), 'b.images.yaml').entries[0]!
        expect(keySpec(entry.spec, 'atlas').key).toBe(single.key)
        expect(keyOf(stringify({ ...unseeded, seed: single.pixels.seed }))).toBe(single.key)
      }),
      { numRuns: 100 },
    )
  })

  it('reads equivalent spellings of numbers alike', () => {
    fc.assert(
      fc.property(dimension, fc.integer({ min: 1, max: 300 }), (width, tenths) => {
        const g = tenths / 10
        const a = keyOf(`prompt: x\nwidth: ${width}\nguidance_scale: ${g}\n`)
        expect(keyOf(`prompt: x\nwidth: 0x${width.toString(16)}\nguidance_scale: ${g.toFixed(3)}\n`)).toBe(a)
        expect(keyOf(`prompt: x\nwidth: ${width}.0\nguidance_scale: ${g.toExponential()}\n`)).toBe(a)
      }),
      { numRuns: 100 },
    )
  })
})

describe('the manifest loader, for any input', () => {
  const check = (source: string | Uint8Array) => {
    try {
      parseManifest(source, 'any.images.yaml')
    } catch (error) {
      expect(error).toBeInstanceOf(ManifestError)
      expect((error as ManifestError).message).toMatch(/^(\d+ problems in any\.images\.yaml:\n\s+)?any\.images\.yaml:\d+:\d+/)
    }
  }

  it('throws nothing but ManifestError on arbitrary text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200, unit: 'binary' }), check), { numRuns: 500 })
  })

  it('throws nothing but ManifestError on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), check), { numRuns: 500 })
  })

  it('throws nothing but ManifestError on arbitrary YAML values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 3 }), (top, entry) => {
        check(stringify(top))
        check(stringify({ images: { a: entry } }))
        check(stringify({ defaults: entry, images: { a: { prompt: 'x' } } }))
        check(stringify({ prompt: 'x', input: entry }))
      }),
      { numRuns: 300 },
    )
  })

  it('throws nothing but ManifestError on valid manifests with one field broken', () => {
    const fields = ['prompt', 'model', 'width', 'height', 'steps', 'guidance_scale', 'seed', 'input', 'image', 'alt', 'format', 'quality', 'widths', 'placeholder', 'unknown']
    fc.assert(
      fc.property(spec, fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 2 }), (s, field, value) => {
        check(stringify({ ...s, [field]: value }))
      }),
      { numRuns: 300 },
    )
  })
})
