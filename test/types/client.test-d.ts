/// <reference path="../../client.d.cts" />
import { describe, expectTypeOf, it } from 'vitest'
import hero from './hero.images.yaml'
import art from './art.images.yml'
import type { GeneratedImage as Ambient } from './hero.images.yaml'
import type { GeneratedImage } from '../../src/index'

describe('unplugin-imagegen/client', () => {
  it('types a single-image manifest as a GeneratedImage', () => {
    expectTypeOf(hero.src).toEqualTypeOf<string>()
    expectTypeOf(hero.width).toEqualTypeOf<number>()
    expectTypeOf(hero.format).toEqualTypeOf<'webp' | 'avif' | 'png' | 'jpeg'>()
    expectTypeOf(hero.srcset).toEqualTypeOf<string | undefined>()
    expectTypeOf(hero.blurDataURL).toEqualTypeOf<string | undefined>()
    expectTypeOf(hero.blurHeight).toEqualTypeOf<number | undefined>()
    // @ts-expect-error src is a string, not a number
    const wrong: number = hero.src
    void wrong
  })

  it('types a collection as a map of GeneratedImage by name', () => {
    expectTypeOf(art.banner!.src).toEqualTypeOf<string>()
    expectTypeOf(art['hero-wide']!.height).toEqualTypeOf<number>()
  })

  it('declares the same shape as the package exports', () => {
    expectTypeOf<Ambient>().toEqualTypeOf<GeneratedImage>()
  })
})
