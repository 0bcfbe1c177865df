import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CONFIG_FILE, findProjectRoot, resolveOptions } from '../src/options'
import { tempDir } from './helpers/temp'

function withConfig(config: unknown): string {
  const root = tempDir('imagegen-config-')
  writeFileSync(join(root, CONFIG_FILE), typeof config === 'string' ? config : JSON.stringify(config))
  return root
}

describe('imagegen.config.json under the plugin options', () => {
  it('supplies the options the plugin does not give; the plugin options win', () => {
    const root = withConfig({ cacheDir: 'art', provider: 'placeholder', concurrency: 2, maxNewImages: 7 })
    const fromFile = resolveOptions({}, { from: root, env: {} })
    expect(fromFile).toMatchObject({ root, cacheDir: join(root, 'art'), concurrency: 2, maxNewImages: 7 })
    expect(fromFile.provider.name).toBe('placeholder')
    const overridden = resolveOptions({ maxNewImages: 50, cacheDir: '.cache', concurrency: undefined }, { from: root, env: {} })
    expect(overridden).toMatchObject({ cacheDir: join(root, '.cache'), concurrency: 2, maxNewImages: 50 })
  })

  it('is read from the root the options name', () => {
    const root = withConfig({ maxNewImages: 3 })
    expect(resolveOptions({ root }, { from: '/elsewhere', env: {} }).maxNewImages).toBe(3)
    expect(resolveOptions({}, { from: tempDir(), env: {} }).maxNewImages).toBe(25)
  })

  it('refuses an API key, a root and unknown options, with the file named', () => {
    expect(() => resolveOptions({}, { from: withConfig({ apiKey: 'sk-secret-123' }), env: {} })).toThrow(
      'imagegen.config.json: `apiKey` must not be in the config file, which is committed: set the ATLASCLOUD_API_KEY environment variable instead',
    )
    expect(() => resolveOptions({}, { from: withConfig({ apiKey: 'sk-secret-123' }), env: {} })).not.toThrow(/sk-secret/)
    expect(() => resolveOptions({}, { from: withConfig({ root: '..' }), env: {} })).toThrow('`root` cannot be set in the config file')
    expect(() => resolveOptions({}, { from: withConfig({ maxNewImage: 3 }), env: {} })).toThrow('unknown option `maxNewImage`: did you mean `maxNewImages`?')
    expect(() => resolveOptions({}, { from: withConfig({ provider: { name: 'x' } }), env: {} })).toThrow('`provider` must be "atlas" or "placeholder"')
    expect(() => resolveOptions({}, { from: withConfig({ concurrency: 0 }), env: {} })).toThrow('invalid imagegen.config.json: `concurrency`')
    expect(() => resolveOptions({}, { from: withConfig('{ "mode": '), env: {} })).toThrow('imagegen.config.json is not valid JSON')
    expect(() => resolveOptions({}, { from: withConfig([1]), env: {} })).toThrow('must hold a JSON object of options')
  })

  it('cannot aim the key at another host, nor the caches outside the project: a commit could', () => {
    const env = { ATLASCLOUD_API_KEY: 'sk-config-1234', ATLASCLOUD_BASE_URL: 'https://api.atlascloud.ai' }
    expect(() => resolveOptions({}, { from: withConfig({ baseURL: 'http://attacker.example' }), env })).toThrow(
      'imagegen.config.json: `baseURL` must not be in the config file: the key is sent there, and a commit could aim it at any host; set the ATLASCLOUD_BASE_URL environment variable or the plugin option `baseURL` instead',
    )
    for (const [option, path] of [['cacheDir', '../../outside'], ['derivedCacheDir', '/tmp/outside'], ['cacheDir', 'art/../../x']]) {
      expect(() => resolveOptions({}, { from: withConfig({ [option!]: path }), env })).toThrow(
        `invalid imagegen.config.json: \`${option}\` must be a folder inside the project (a relative path without \`..\`)`,
      )
    }
    // the plugin options (code the project runs) and the environment still set both
    const root = withConfig({ cacheDir: 'art' })
    expect(resolveOptions({ baseURL: 'https://proxy.example', cacheDir: '../shared-cache' }, { from: root, env }).cacheDir).toBe(join(root, '../shared-cache'))
  })
})

describe('the project root of a CLI run', () => {
  it('is the nearest folder up with imagegen.config.json, not past the project edge; else that edge', () => {
    const root = withConfig({})
    mkdirSync(join(root, 'src/deep'), { recursive: true })
    expect(findProjectRoot(join(root, 'src/deep'))).toBe(root)
    const pkg = join(root, 'packages/site')
    mkdirSync(join(pkg, 'src'), { recursive: true })
    writeFileSync(join(pkg, 'package.json'), '{}')
    expect(findProjectRoot(join(pkg, 'src'))).toBe(pkg)
    expect(findProjectRoot(pkg)).toBe(pkg)
  })
})
