import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { viteProject } from './helpers/vite-project'

describe.each(['webpack', 'rspack'] as const)('%s watch mode', (bundler) => {
  it('rebuilds when a manifest changes, with the new image', async () => {
    const root = viteProject()
    const compile = bundler === 'webpack' ? (await import('webpack')).default : (await import('@rspack/core')).rspack
    const { default: imagegen } = bundler === 'webpack' ? await import('../src/webpack') : await import('../src/rspack')
    const compiler = (compile as any)({
      mode: 'development',
      context: root,
      entry: join(root, 'src/main.js'),
      devtool: false,
      output: { path: join(root, 'out'), filename: 'main.js', publicPath: '/' },
      plugins: [imagegen({ root, provider: 'placeholder' })],
    })
    const builds: string[] = []
    let edited = false
    await new Promise<void>((resolve, reject) => {
      const watching = compiler.watch({ aggregateTimeout: 50 }, (error: Error | null, stats: any) => {
        if (error || stats.hasErrors()) return reject(error ?? new Error(stats.toString()))
        const output = readFileSync(join(root, 'out/main.js'), 'utf8')
        builds.push(output)
        if (!edited) {
          edited = true
          const file = join(root, 'src/hero.images.yaml')
          // Let the watcher settle on the first build's files (it may rebuild once for the
          // images that build wrote) before the edit.
          setTimeout(() => writeFileSync(file, readFileSync(file, 'utf8').replace('at dusk', 'at dawn')), 300)
        } else if (output.includes('A lighthouse at dawn')) {
          watching.close(() => resolve())
        }
      })
    })
    expect(builds[0]).toContain('A lighthouse at dusk')
    // A watcher cannot swap placeholders later, so images are waited for: none is a placeholder.
    for (const build of builds) expect(build).not.toContain('data:image/svg+xml')
    expect(builds.at(-1)).toContain('A lighthouse at dawn')
    expect(builds.at(-1)).not.toContain('A lighthouse at dusk')
  })
})
