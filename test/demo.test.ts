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
    expect(listFiles(outDir).filter((f) => f.endsWith('.webp'))).toHaveLength(4)
  })
})
