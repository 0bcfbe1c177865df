import { join } from 'node:path'
import { build, createLogger } from 'vite'
import { describe, expect, it } from 'vitest'
import imagegen from '../src/vite'
import { listFiles, tempDir } from './helpers/temp'

const site = join(import.meta.dirname, '../examples/site')

describe('the demo site', () => {
  it('builds offline from its committed cache, generating nothing', async () => {
    const logs: string[] = []
    const logger = createLogger('info')
    logger.info = (msg) => void logs.push(msg)
    const outDir = tempDir('imagegen-demo-')
    await build({
      root: site,
      configFile: false,
      customLogger: logger,
      plugins: [imagegen({ provider: 'placeholder', mode: 'offline', maxNewImages: 0 })],
      build: { outDir, emptyOutDir: true },
    })
    expect(logs.join('\n')).toMatch(/imagegen: 4 images — 4 cached, 0 generated/)
    const images = listFiles(outDir).filter((f) => /\.(webp|avif)$/.test(f))
    // WebP: hero 480, 768, 1024; lighthouse 256, 512; city 384, 768. AVIF: robot 256, 512.
    expect(images.filter((f) => f.endsWith('.webp'))).toHaveLength(7)
    expect(images.filter((f) => f.endsWith('.avif'))).toHaveLength(2)
  })
})
