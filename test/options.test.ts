import { describe, expect, it } from 'vitest'
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

  it('refuses bad options with a message naming each', () => {
    expect(() => resolveOptions({ concurrency: 0, baseURL: 'ftp://x' } as never, { from: tempDir(), env: {} })).toThrow(ImagegenError)
    expect(() => resolveOptions({ concurrency: 0 }, { from: tempDir(), env: {} })).toThrow(/invalid plugin options: `concurrency`/)
    expect(() => resolveOptions({ nope: 1 } as never, { from: tempDir(), env: {} })).toThrow(/invalid plugin options/)
  })
})
