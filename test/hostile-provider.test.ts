/**
 * A provider that answers with things that are not images: output URLs of other schemes,
 * redirects to them or round in circles, bodies that never end or stop half-way, HTML.
 * Each is refused with a provider error naming what came, and nothing reaches the cache.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ProviderError } from '../src/core/errors'
import { GenerationError } from '../src/core/scheduler'
import type { AtlasProviderOptions } from '../src/providers/atlas'
import { startAtlasServer, type AtlasServer, type InterceptResult } from './atlas-server'
import { atlas, build, collection, entriesOf } from './helpers/atlas'
import { tempDir } from './helpers/temp'

let server: AtlasServer
/** A second origin, as a storage host or CDN in front of the outputs. */
let storage: Server
let storageURL: string
let storageAnswer: (path: string) => { status: number; location?: string } = () => ({ status: 404 })

beforeAll(async () => {
  server = await startAtlasServer()
  storage = createServer((req, res) => {
    const { status, location } = storageAnswer(req.url ?? '/')
    res.writeHead(status, location === undefined ? {} : { location })
    res.end()
  })
  await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve))
  storageURL = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`
})
afterAll(async () => {
  storage.closeAllConnections()
  await new Promise((resolve) => storage.close(resolve))
  await server.close()
})
beforeEach(() => {
  server.options = {}
  server.reset()
})

const HTML_PAGE = '<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in to continue</body></html>'

/** Polls answer that the prediction completed with these outputs. */
function completedWith(...outputs: unknown[]): void {
  server.options.intercept = (req) =>
    req.method === 'GET' && req.path.includes('/prediction/')
      ? { status: 200, body: { code: 200, data: { id: req.path.split('/').pop(), status: 'completed', outputs } } }
      : 'continue'
}

/** Output downloads answer `answer`; everything else is served as usual. Counts the downloads. */
function outputsAnswer(answer: (path: string) => InterceptResult): { requests: number } {
  const seen = { requests: 0 }
  server.options.intercept = (req) => {
    if (!req.path.startsWith('/outputs/')) return 'continue'
    seen.requests++
    return answer(req.path)
  }
  return seen
}

/**
 * Generates one image through the scheduler into a fresh project and expects it refused:
 * a provider error (with no `[imagegen]` prefix: that is added where it is printed), no cache
 * entry, nothing at all left in the images folder.
 */
async function refused(options: AtlasProviderOptions = {}): Promise<{ error: ProviderError; journal: unknown; project: string }> {
  const project = tempDir('imagegen-hostile-provider-')
  const entries = await entriesOf(project, collection(['art']))
  const { cache, run } = build(project, atlas(server, options))
  const thrown = await run(entries).then(() => undefined, (e: unknown) => e)
  expect(thrown).toBeInstanceOf(GenerationError)
  const error = (thrown as GenerationError).failures[0]!.error as ProviderError
  expect(error).toBeInstanceOf(ProviderError)
  expect(error.message).not.toContain('[imagegen]')
  expect(error.message).not.toContain('UND_ERR')
  expect(await cache.lookup(entries[0]!.key)).toBeUndefined()
  expect(await cache.keys()).toEqual([])
  const images = join(project, '.imagegen', 'images')
  expect(existsSync(images) ? readdirSync(images) : []).toEqual([])
  return { error, journal: await cache.readPending(entries[0]!.key), project }
}

describe('output URLs of other schemes', () => {
  it.each([
    ['file:///etc/passwd', 'file:'],
    ['file://storage.example/share/out.png', 'file:'],
    ['ftp://storage.example/outputs/out.png', 'ftp:'],
    ['javascript:alert(document.cookie)', 'javascript:'],
    [{ url: 'file:///etc/passwd' }, 'file:'],
  ])('%j is refused without fetching anything', async (output, scheme) => {
    completedWith(output)
    const { error, journal } = await refused()
    expect(error.message).toMatch(
      new RegExp(`^Atlas Cloud prediction \`pred_\\d+\` is \`completed\` but its output is a \`${scheme}\` URL; only http\\(s\\) URLs, data: URLs and base64 are accepted\\. Nothing was cached; run again to generate it afresh\\.$`),
    )
    expect(server.downloadRequests).toBe(0)
    // a definite answer: the prediction is over, the journal with it
    expect(journal).toBeUndefined()
  })
})

describe('redirects', () => {
  it.each([
    ['file:///etc/passwd', 'file:'],
    ['file://127.0.0.1/etc/passwd', 'file:'],
    ['ftp://127.0.0.1/outputs/out.png', 'ftp:'],
    ['javascript:alert(1)', 'javascript:'],
    ['data:image/png;base64,iVBORw0KGgo=', 'data:'],
  ])('to %s is not followed', async (location, scheme) => {
    const downloads = outputsAnswer(() => ({ status: 302, headers: { location } }))
    const { error } = await refused()
    expect(error.message).toMatch(
      new RegExp(`^the output storage at http://127\\.0\\.0\\.1:\\d+ redirected the download of prediction \`pred_\\d+\` to a \`${scheme}\` URL; only http\\(s\\) redirects are followed\\. Nothing was cached; run again to generate it afresh\\.$`),
    )
    // refused at once: asking again would be told the same
    expect(downloads.requests).toBe(1)
  })

  it('to another host’s file scheme, from a storage host in front of the outputs, is not followed', async () => {
    completedWith(`${storageURL}/outputs/out.png`)
    storageAnswer = () => ({ status: 301, location: 'file://cdn.example/outputs/out.png' })
    const { error } = await refused()
    expect(error.message).toContain(`the output storage at ${storageURL} redirected the download of prediction`)
    expect(error.message).toContain('to a `file:` URL')
  })

  it('a redirect loop is bounded', async () => {
    const hops = outputsAnswer(() => ({ status: 307, headers: { location: `/outputs/again-${Math.random()}.png` } }))
    const { error } = await refused()
    expect(error.message).toMatch(
      /^the output storage at http:\/\/127\.0\.0\.1:\d+ redirected the download of prediction `pred_\d+` more than 5 times; refusing to follow further\. Nothing was cached; run again to generate it afresh\.$/,
    )
    // the first request and five redirects followed
    expect(hops.requests).toBe(6)
  })

  it('http(s) redirects to another host are followed (storage links often point at a CDN)', async () => {
    const project = tempDir('imagegen-hostile-provider-')
    const entries = await entriesOf(project, collection(['cdn']))
    server.options.latencyMs = 0
    // the prediction names the storage host; the storage host sends the client on to the outputs
    server.options.intercept = (req) =>
      req.method === 'GET' && req.path.includes('/prediction/')
        ? { status: 200, body: { code: 200, data: { id: req.path.split('/').pop(), status: 'completed', outputs: [`${storageURL}/o/${req.path.split('/').pop()}`] } } }
        : 'continue'
    storageAnswer = (path) => ({ status: 302, location: `${server.url}/outputs/${path.split('/').pop()}.png` })
    const { cache, run } = build(project, atlas(server))
    await run(entries)
    expect((await cache.lookup(entries[0]!.key))?.record.format).toBe('png')
    expect(server.downloads).toBe(1)
  })
})

describe('bodies that never end', () => {
  it('an output without a length that never ends is cut off at the size cap', async () => {
    server.options.download = () => ({ streamBytes: Number.POSITIVE_INFINITY })
    const { error } = await refused({ maxOutputBytes: 256 * 1024 })
    expect(error.message).toMatch(/^the output of prediction `pred_\d+` is larger than 256 KB; refusing to save it\./)
    expect(server.downloadsCutShort).toBe(1)
  })

  it('a poll answer that never ends is cut off, and the paid prediction stays journaled', async () => {
    server.options.intercept = (req) => (req.method === 'GET' && req.path.includes('/prediction/') ? { status: 200, streamBytes: Number.POSITIVE_INFINITY } : 'continue')
    const { error, journal } = await refused({ maxOutputBytes: 256 * 1024, maxRetries: 1 })
    expect(error.message).toMatch(/^Atlas Cloud sent an answer larger than 1\.3 MB \(while polling prediction `pred_\d+`\); refusing to read it\./)
    expect(server.downloadsCutShort).toBe(2)
    expect(journal).toMatchObject({ state: { id: expect.stringMatching(/^pred_\d+$/) } })
  })

  it('a submit answer that never ends is not read to its end, nor sent again', async () => {
    server.options.intercept = (req) => (req.method === 'POST' ? { status: 200, streamBytes: Number.POSITIVE_INFINITY } : 'continue')
    const { error } = await refused({ maxOutputBytes: 256 * 1024 })
    expect(error.message).toMatch(/^Atlas Cloud sent an answer larger than 1\.3 MB \(while submitting a prediction\); refusing to read it\. The submit may have been billed/)
    expect(server.submitAttempts).toBe(1)
    expect(server.downloadsCutShort).toBe(1)
  })
})

describe('a body that stops half-way', () => {
  it('ends at the per-request timeout, is tried again, then fails; the next run resumes the paid prediction', async () => {
    server.options.download = () => ({ stallAfter: 100 })
    const project = tempDir('imagegen-hostile-provider-')
    const entries = await entriesOf(project, collection(['stalled']))
    const provider = { requestTimeoutMs: 250, maxRetries: 1 }
    const first = build(project, atlas(server, provider))
    const thrown = (await first.run(entries).catch((e: unknown) => e)) as GenerationError
    expect(thrown).toBeInstanceOf(GenerationError)
    const error = thrown.failures[0]!.error
    expect(error.message).toMatch(
      /^the output storage at http:\/\/127\.0\.0\.1:\d+ did not finish sending the output of prediction `pred_\d+` within 250ms \(1 KB arrived\)\. It is paid for: the next run downloads it again without a new submit\.$/,
    )
    expect(server.downloadsStalled).toBe(2)
    expect(await first.cache.keys()).toEqual([])
    expect(readdirSync(join(project, '.imagegen', 'images'))).toEqual([])
    const journal = await first.cache.readPending(entries[0]!.key)
    expect(journal?.state.id).toMatch(/^pred_\d+$/)

    server.options.download = () => 'continue'
    await build(project, atlas(server, provider)).run(entries)
    expect(server.submits).toHaveLength(1)
    expect((await first.cache.lookup(entries[0]!.key))?.record.predictionId).toBe(journal!.state.id)
  })
})

describe('HTML where an image should be', () => {
  it('an HTML page served as text/html is refused after retries', async () => {
    const downloads = outputsAnswer(() => ({ status: 200, raw: HTML_PAGE }))
    const { error, journal } = await refused({ maxRetries: 1 })
    expect(error.message).toMatch(
      /^the output of prediction `pred_\d+` is not a PNG, JPEG, WebP or AVIF image \(it starts with "<!DOCTYPE html><html><head><title>Sign i", though it was labelled `text\/html`\)\. Nothing was cached; run again to generate it afresh\.$/,
    )
    expect(downloads.requests).toBe(2)
    expect(journal).toBeUndefined()
  })

  it('an HTML data: URL is refused', async () => {
    completedWith(`data:text/html,${encodeURIComponent(HTML_PAGE)}`)
    const { error } = await refused()
    expect(error.message).toContain('is not a PNG, JPEG, WebP or AVIF image (it starts with "<!DOCTYPE html>')
    expect(error.message).toContain('though it was labelled `text/html`')
  })
})
