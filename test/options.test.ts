import { describe, expect, it } from 'vitest'
import { createAtlasProvider } from '../src/providers/atlas'
import { ImagegenError } from '../src/core/errors'
import { resolveOptions } from '../src/options'
import { tempDir } from './helpers/temp'

describe('resolveOptions', () => {
  it('settles every default', () => {
    const root = tempDir()
    const resolved = resolveOptions({}, { from: root, env: {} })
    expect(resolved).toMatchObject({ root, cacheDir: `${root}/.imagegen`, concurrency: 4, maxNewImages: 25, dts: false })
    expect(resolved.provider.name).toBe('atlas')
    expect(resolved.cannotGenerate).toBe('no API key is set (ATLASCLOUD_API_KEY)')
  })

  it.each([
    ['a key of spaces in the options', { apiKey: '   ' }, {}],
    ['an empty secret in the environment', {}, { ATLASCLOUD_API_KEY: ' \n' }],
  ])('treats %s as no key', (_, options, env) => {
    expect(resolveOptions(options, { from: tempDir(), env }).cannotGenerate).toBe('no API key is set (ATLASCLOUD_API_KEY)')
  })

  it('can generate with a key, not offline', () => {
    const root = tempDir()
    expect(resolveOptions({}, { from: root, env: { ATLASCLOUD_API_KEY: 'sk-x' } }).cannotGenerate).toBeUndefined()
    expect(resolveOptions({}, { from: root, env: { ATLASCLOUD_API_KEY: 'sk-x', IMAGEGEN_OFFLINE: '1' } }).cannotGenerate).toMatch(/^offline mode is on/)
    expect(resolveOptions({ provider: 'placeholder', mode: 'offline' }, { from: root, env: {} }).cannotGenerate).toBeUndefined()
  })

  it('defers the Atlas client but not its name, which is part of every key', () => {
    const { provider } = resolveOptions({}, { from: tempDir(), env: { ATLASCLOUD_API_KEY: 'k' } })
    expect(provider.name).toBe(createAtlasProvider({ apiKey: 'k' }).name)
    expect(typeof provider.learn).toBe('function')
  })

  it('names each bad option in its own words, and never shows a bad key', () => {
    const message = (options: object) => {
      try {
        resolveOptions(options as never, { from: tempDir(), env: {} })
      } catch (error) {
        return (error as Error).message
      }
    }
    expect(message({ dts: 'yes' })).toBe('invalid plugin options: `dts` must be true or false (got "yes")')
    expect(message({ mode: 'x' })).toBe('invalid plugin options: `mode` must be \'auto\' or \'offline\' (got "x")')
    expect(message({ baseURL: 'ftp://x' })).toBe('invalid plugin options: `baseURL` must be an http or https URL (got "ftp://x")')
    expect(message({ include: 5 })).toBe('invalid plugin options: `include` must be a glob, a RegExp, or a list of them (got 5)')
    expect(message({ maxNewImages: -1 })).toBe('invalid plugin options: `maxNewImages` must be a whole number 0 or more (got -1)')
    expect(message({ apiKey: 123456789 })).toBe('invalid plugin options: `apiKey` must be a string (better: set the ATLASCLOUD_API_KEY environment variable)')
  })

  it('refuses bad options with a message naming each', () => {
    expect(() => resolveOptions({ concurrency: 0, baseURL: 'ftp://x' } as never, { from: tempDir(), env: {} })).toThrow(ImagegenError)
    expect(() => resolveOptions({ concurrency: 0 }, { from: tempDir(), env: {} })).toThrow(/invalid plugin options: `concurrency`/)
    expect(() => resolveOptions({ nope: 1 } as never, { from: tempDir(), env: {} })).toThrow(/invalid plugin options/)
  })
})
