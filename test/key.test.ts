import { describe, expect, it } from 'vitest'
import { canonicalJSON } from '../src/core/canonical'
import { deriveSeed, keySpec } from '../src/core/key'
import { parseManifest } from '../src/core/manifest'

const keyOf = (yaml: string, file = 'a.images.yaml', provider = 'atlas') =>
  keySpec(parseManifest(yaml, file).entries[0]!.spec, provider).key

const base = 'prompt: A lighthouse at dusk\nwidth: 512\nheight: 768\nsteps: 4\nguidance_scale: 3.5\ninput:\n  enable_safety_checker: true\n  num_images: 1\n'

describe('the spec key', () => {
  const reference = keyOf(base)

  it('is a SHA-256 in hex', () => expect(reference).toMatch(/^[0-9a-f]{64}$/))

  it.each([
    ['YAML key order', 'input:\n  num_images: 1\n  enable_safety_checker: true\nguidance_scale: 3.5\nsteps: 4\nheight: 768\nwidth: 512\nprompt: A lighthouse at dusk\n'],
    ['flow style and quoting', '{ prompt: "A lighthouse at dusk", width: 512, height: 768, steps: 4, guidance_scale: 3.50, input: { num_images: 1, enable_safety_checker: true } }'],
    ['alt', `${base}alt: A red lighthouse\n`],
    ['format', `${base}format: avif\n`],
    ['quality', `${base}quality: 55\n`],
    ['widths', `${base}widths: [256]\n`],
    ['placeholder', `${base}placeholder: blur\n`],
    ['the explicit default model', `${base}model: black-forest-labs/flux-schnell\n`],
    ['surrounding whitespace of the prompt', base.replace('A lighthouse at dusk', '"  A lighthouse at dusk\\n"')],
  ])('does not change with %s', (_, yaml) => {
    expect(keyOf(yaml)).toBe(reference)
  })

  it("does not change with the entry's name or the manifest's path", () => {
    const single = keyOf(base, 'src/one.images.yaml')
    const entry = keySpec(
      parseManifest(`images:\n  lighthouse:\n${base.replace(/^/gm, '    ').trimEnd()}\n`, 'other/dir/two.images.yaml').entries[0]!.spec,
      'atlas',
    ).key
    expect(single).toBe(reference)
    expect(entry).toBe(reference)
  })

  it.each([
    ['prompt', base.replace('dusk', 'dawn')],
    ['width', base.replace('width: 512', 'width: 528')],
    ['height', base.replace('height: 768', 'height: 784')],
    ['steps', base.replace('steps: 4', 'steps: 3')],
    ['guidance_scale', base.replace('3.5', '3.6')],
    ['seed', `${base}seed: 7\n`],
    ['model', `${base}model: black-forest-labs/flux-dev\n`],
    ['a raw input field', base.replace('enable_safety_checker: true', 'enable_safety_checker: false')],
    ['an added raw input field', `${base}  output_format: png\n`],
  ])('changes with %s', (_, yaml) => {
    expect(keyOf(yaml)).not.toBe(reference)
  })

  it('changes with the provider', () => expect(keyOf(base, 'a.images.yaml', 'placeholder')).not.toBe(reference))

  it('changes with the reference image content', () => {
    const spec = parseManifest(base, 'a.images.yaml').entries[0]!.spec
    expect(keySpec(spec, 'atlas', 'a'.repeat(64)).key).not.toBe(keySpec(spec, 'atlas', 'b'.repeat(64)).key)
  })

  it('always carries an explicit seed, derived from the rest when absent', () => {
    const spec = parseManifest(base, 'a.images.yaml').entries[0]!.spec
    const { pixels } = keySpec(spec, 'atlas')
    expect(Number.isInteger(pixels.seed)).toBe(true)
    expect(pixels.seed).toBeGreaterThanOrEqual(0)
    expect(pixels.seed).toBeLessThanOrEqual(0xffffffff)
    const { seed, ...rest } = pixels
    expect(deriveSeed(rest)).toBe(seed)
    // Writing the derived seed out explicitly names the same image.
    expect(keyOf(`${base}seed: ${seed}\n`)).toBe(reference)
    expect(keySpec({ ...spec, prompt: 'Another' }, 'atlas').pixels.seed).not.toBe(seed)
  })

  it('keeps exactly the pixel-deciding fields in the record', () => {
    const { pixels } = keySpec(parseManifest(`${base}alt: x\nformat: png\n`, 'a.images.yaml').entries[0]!.spec, 'atlas')
    expect(Object.keys(pixels).sort()).toEqual(['guidance_scale', 'height', 'input', 'model', 'prompt', 'provider', 'seed', 'steps', 'v', 'width'])
  })
})

describe('canonicalJSON', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(canonicalJSON({ b: 1, a: { d: [1, { z: 1, y: undefined, x: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":2,"z":1}]},"b":1}')
  })
  it('normalizes numbers', () => {
    expect(canonicalJSON({ a: -0, b: 1.5e3, c: 3.50 })).toBe('{"a":0,"b":1500,"c":3.5}')
    expect(() => canonicalJSON({ a: Number.NaN })).toThrow()
  })
})
