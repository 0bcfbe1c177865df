import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLogger, createServer, type HotPayload, type ViteDevServer } from 'vite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import imagegen from '../src/vite'
import { startAtlasServer, type AtlasServer } from './atlas-server'
import { viteBuild, viteProject } from './helpers/vite-project'

const API_KEY = 'sk-imagegen-hmr-5b7e'
let atlas: AtlasServer
let dev: ViteDevServer | undefined

beforeAll(async () => {
  atlas = await startAtlasServer({ apiKey: API_KEY, latencyMs: 150 })
})
afterAll(async () => {
  await dev?.close()
  await atlas.close()
})

/** Waits until `check` holds, polling; fails after a generous bound instead of hanging. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (check()) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`gave up waiting for ${what} (${JSON.stringify({ downloads: atlas.downloads, submits: atlas.submits.length })})`)
}

describe('vite dev with a key', () => {
  it('regenerates only the edited entry in the background and sends an HMR update when it arrives', async () => {
    const options = { apiKey: API_KEY, baseURL: atlas.url, pollIntervalMs: 5 }
    const root = viteProject()
    await viteBuild(root, options) // every image cached
    atlas.reset()

    const logs: string[] = []
    const logger = createLogger('info')
    logger.info = (msg) => void logs.push(msg)
    dev = await createServer({
      root,
      configFile: false,
      customLogger: logger,
      plugins: [imagegen({ root, ...options })],
      server: { host: '127.0.0.1', port: 0, hmr: { port: 0 } },
    })
    const payloads: HotPayload[] = []
    const hot = dev.environments.client.hot
    const send = hot.send.bind(hot)
    hot.send = ((payload: HotPayload) => {
      payloads.push(payload)
      send(payload)
    }) as typeof hot.send
    await dev.listen()
    const origin = `http://127.0.0.1:${(dev.httpServer!.address() as { port: number }).port}`
    const module = async () => (await fetch(`${origin}/src/art.images.yaml?import`)).text()

    const before = await module()
    expect(before).not.toContain('data:image/svg+xml')
    expect(atlas.requests).toBe(0)

    const file = join(root, 'src/art.images.yaml')
    writeFileSync(file, readFileSync(file, 'utf8').replace('A robot mascot', 'A robot mascot on a skateboard'))
    await until(() => payloads.length > 0, 'the HMR message for the manifest edit')

    // The edited module answers at once, with a placeholder for the one image being generated.
    const during = await module()
    expect(during.match(/data:image\/svg\+xml/g)).toHaveLength(1)
    expect(decodeURIComponent(during)).toContain('generating…')
    const sentBeforeArrival = payloads.length

    await until(() => atlas.downloads === 1 && payloads.length > sentBeforeArrival, 'the HMR update after the image arrived')
    expect(atlas.submits).toHaveLength(1)
    expect(atlas.submits[0]).toMatchObject({ prompt: 'A robot mascot on a skateboard' })
    expect(payloads.slice(sentBeforeArrival).some((p) => p.type === 'update' || p.type === 'full-reload')).toBe(true)

    const after = await module()
    expect(after).not.toContain('data:image/svg+xml')
    expect(atlas.submits).toHaveLength(1)

    // a line for what arrived, timed from its edit; none at shutdown (no summary of the server's whole life)
    await dev.close()
    dev = undefined
    expect(logs.filter((line) => line.includes('imagegen:'))).toEqual([expect.stringMatching(/^imagegen: 1 image generated in \d+\.\ds$/)])
  })
})

describe('closing the dev server', () => {
  it('stops its background predictions and keeps their journal', async () => {
    const slow = await startAtlasServer({ apiKey: API_KEY, latencyMs: 60_000 })
    const warnings: string[] = []
    const logger = createLogger('silent')
    logger.warn = (msg) => void warnings.push(msg)
    try {
      const root = viteProject()
      const server = await createServer({
        root,
        configFile: false,
        customLogger: logger,
        plugins: [imagegen({ root, apiKey: API_KEY, baseURL: slow.url, pollIntervalMs: 5 })],
        server: { host: '127.0.0.1', port: 0, hmr: false, ws: false },
      })
      await server.listen()
      const origin = `http://127.0.0.1:${(server.httpServer!.address() as { port: number }).port}`
      await fetch(`${origin}/src/art.images.yaml?import`)
      await until(() => slow.submits.length === 3 && slow.polls > 3, 'the predictions to be polled')
      await server.close()
      // Every background job ends, stopped: nothing is left that could poll or submit again.
      await until(() => warnings.some((w) => /3 images could not be generated:[^]*the build stopped/.test(w)), 'the jobs to stop')
      const requests = slow.requests
      expect(warnings.join('\n').match(/`[a-z-]+`: the build stopped/g)).toHaveLength(3)
      await slow.close()
      expect(slow.requests).toBe(requests)
      expect(readdirSync(join(root, '.imagegen/pending'))).toHaveLength(3)
    } finally {
      await slow.close().catch(() => {})
    }
  })
})

describe('an image that fails in dev', () => {
  it('is not paid for again on every reload', async () => {
    const failing = await startAtlasServer({ apiKey: API_KEY, latencyMs: 20, fail: (body) => (body.prompt === 'A robot mascot' ? 'refused' : undefined) })
    const warnings: string[] = []
    const logger = createLogger('silent')
    logger.warn = (msg) => void warnings.push(msg)
    const root = viteProject()
    const server = await createServer({
      root,
      configFile: false,
      customLogger: logger,
      plugins: [imagegen({ root, apiKey: API_KEY, baseURL: failing.url, pollIntervalMs: 5 })],
      server: { host: '127.0.0.1', port: 0, hmr: false, ws: false },
    })
    try {
      await server.listen()
      const origin = `http://127.0.0.1:${(server.httpServer!.address() as { port: number }).port}`
      const module = async () => (await fetch(`${origin}/src/art.images.yaml?import`)).text()
      await module()
      await until(() => warnings.some((w) => w.includes('refused')), 'the failure to be reported')
      // Reloads (the other images arrived) and later requests load the module again…
      for (let i = 0; i < 3; i++) await module()
      expect((await module()).match(/data:image\/svg\+xml/g)).toHaveLength(1)
      // …but the failed image was submitted once.
      expect(failing.submits.filter((s) => s.prompt === 'A robot mascot')).toHaveLength(1)
      expect(failing.submits).toHaveLength(3)
    } finally {
      await server.close()
      await failing.close()
    }
  })
})

describe('a manifest loaded twice while its images are made (SSR, then the client)', () => {
  it('makes them once, in one batch with one line', async () => {
    const root = viteProject()
    const logs: string[] = []
    const logger = createLogger('info')
    logger.info = (msg) => void logs.push(msg)
    atlas.reset()
    const server = await createServer({
      root,
      configFile: false,
      customLogger: logger,
      plugins: [imagegen({ root, apiKey: API_KEY, baseURL: atlas.url, pollIntervalMs: 5 })],
      server: { host: '127.0.0.1', port: 0, hmr: false },
    })
    try {
      await server.listen()
      const origin = `http://127.0.0.1:${(server.httpServer!.address() as { port: number }).port}`
      await server.ssrLoadModule('/src/art.images.yaml')
      await fetch(`${origin}/src/art.images.yaml?import`)
      await until(() => logs.some((line) => line.startsWith('imagegen:')), 'the line for the batch')
      await until(() => atlas.downloads === 3, 'the three images')
      expect(atlas.submits).toHaveLength(3)
      expect(logs.filter((line) => line.startsWith('imagegen:'))).toEqual([expect.stringMatching(/^imagegen: 3 images generated in \d+\.\ds$/)])
    } finally {
      await server.close()
    }
  })
})
