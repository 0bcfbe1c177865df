import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { declarationPath } from '../src/core/declaration'
import { bundle } from './helpers/bundlers'
import { tempDir } from './helpers/temp'
import { viteProject, writeProject } from './helpers/vite-project'

const repo = join(import.meta.dirname, '..')
const tsc = join(repo, 'node_modules/typescript/bin/tsc')

/** Runs tsc on a project; returns its diagnostics ('' when clean). */
function typecheck(dir: string): string {
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '-p', dir], { encoding: 'utf8', stdio: 'pipe' })
    return ''
  } catch (error) {
    return (error as { stdout: string }).stdout
  }
}

describe('the `dts` option', () => {
  it('writes exact declarations beside each manifest, which tsc checks imports against, strictly and with the client types alone', async () => {
    const root = viteProject()
    await bundle('vite', root, { provider: 'placeholder', dts: true })
    const declaration = readFileSync(declarationPath(join(root, 'src/art.images.yaml')), 'utf8')
    expect(declaration).toContain('/// <reference types="unplugin-imagegen/client" />')
    expect(declaration).not.toMatch(/from 'unplugin-imagegen'/)
    expect(declaration).toContain('export declare const banner: ImagegenGeneratedImage')
    expect(declaration).toContain('"hero-wide": ImagegenGeneratedImage')
    expect(readFileSync(join(root, 'src/hero.images.d.yaml.ts'), 'utf8')).toContain('declare const image: ImagegenGeneratedImage\nexport default image')

    // A browser project as Nuxt sets one up (`noUncheckedIndexedAccess`), every library checked, no Node types, the package installed.
    mkdirSync(join(root, 'node_modules'), { recursive: true })
    symlinkSync(repo, join(root, 'node_modules/unplugin-imagegen'), 'dir')
    const compilerOptions = { strict: true, noUncheckedIndexedAccess: true, skipLibCheck: false, noEmit: true, module: 'preserve', moduleResolution: 'bundler', allowArbitraryExtensions: true, lib: ['ES2022', 'DOM'], types: [] }
    writeProject(root, {
      'tsconfig.json': JSON.stringify({ compilerOptions, include: ['src/**/*.ts'] }),
      'src/good.ts': "import hero from './hero.images.yaml'\nimport art, { banner, avatar } from './art.images.yaml'\nexport const urls: string[] = [hero.src, banner.src, avatar.src, art['hero-wide'].src, String(art.banner.width)]\n",
    })
    expect(typecheck(root)).toBe('')

    writeFileSync(
      join(root, 'src/bad.ts'),
      "import { typo } from './art.images.yaml'\nimport hero from './hero.images.yaml'\nimport art from './art.images.yaml'\nexport const n: number = hero.src\nexport { typo }\nexport const a = art.src\nexport const b = art.nonexistent\nexport const c: Buffer | undefined = undefined\n",
    )
    const errors = typecheck(root)
    expect(errors).toMatch(/src\/bad\.ts\(1,10\): error TS\d+: Module '".\/art\.images\.yaml"' has no exported member 'typo'/)
    expect(errors).toMatch(/src\/bad\.ts\(4,14\): error TS2322: Type 'string' is not assignable to type 'number'/)
    expect(errors).toMatch(/src\/bad\.ts\(6,22\): error TS2339: Property 'src' does not exist/)
    expect(errors).toMatch(/src\/bad\.ts\(7,22\): error TS2339: Property 'nonexistent' does not exist/)
    expect(errors).toMatch(/src\/bad\.ts\(8,17\): error TS\d+: Cannot find name 'Buffer'/)
    expect(errors.match(/error TS/g)).toHaveLength(5)
  })

  it('leaves an unchanged declaration untouched', async () => {
    const root = viteProject()
    await bundle('esbuild', root, { provider: 'placeholder', dts: true })
    const path = join(root, 'src/art.images.d.yaml.ts')
    const before = statSync(path).mtimeMs
    writeFileSync(path, readFileSync(path)) // same bytes, fresh mtime would differ if rewritten by us below
    const touched = statSync(path).mtimeMs
    await bundle('esbuild', root, { provider: 'placeholder', dts: true })
    expect(statSync(path).mtimeMs).toBe(touched)
    expect(touched).toBeGreaterThanOrEqual(before)
  })

  it('is off by default', async () => {
    const root = tempDir()
    writeProject(root, { 'src/main.js': "import hero from './hero.images.yaml'\nglobalThis.__imagegen = { hero }\n", 'src/hero.images.yaml': 'prompt: x\nwidth: 64\nheight: 64\n' })
    await bundle('esbuild', root, { provider: 'placeholder' })
    expect(() => statSync(join(root, 'src/hero.images.d.yaml.ts'))).toThrow()
  })
})
