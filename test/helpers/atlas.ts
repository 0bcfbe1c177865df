/** What the Atlas tests share: a provider on fast settings, jobs, manifests and a scheduler. */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, expect } from 'vitest'
import { ImageCache } from '../../src/core/cache'
import { keyEntries, type KeyedEntry } from '../../src/core/entries'
import { parseManifest } from '../../src/core/manifest'
import { planImages } from '../../src/core/plan'
import { Scheduler, type GenerateEvent } from '../../src/core/scheduler'
import { ProviderError } from '../../src/core/errors'
import { createAtlasProvider, type AtlasProviderOptions } from '../../src/providers/atlas'
import type { GenerationJob, Provider, ProviderRequest } from '../../src/providers/types'
import { startAtlasServer, type AtlasServer } from '../atlas-server'

export const MODEL = 'black-forest-labs/flux-schnell'

/** Everything in milliseconds, so that no test waits for real time. */
export const FAST: AtlasProviderOptions = {
  pollIntervalMs: 2,
  maxPollIntervalMs: 10,
  retryDelayMs: 1,
  maxRetryDelayMs: 5,
  requestTimeoutMs: 5_000,
  // tests that mean the warm-up set a long one
  warmUpMs: 20,
}

export function atlas(server: AtlasServer, options: AtlasProviderOptions = {}): Provider {
  return createAtlasProvider({ apiKey: server.options.apiKey ?? 'test-key', baseURL: server.url, ...FAST, ...options })
}

let files = 0
export function job(dir: string, request: Partial<ProviderRequest> = {}, rest: Partial<GenerationJob> = {}): GenerationJob {
  return {
    key: 'test-key-hash',
    request: { model: MODEL, prompt: 'A beautiful landscape with mountains and lake', width: 64, height: 48, seed: 7, ...request },
    signal: new AbortController().signal,
    destination: join(dir, `out-${process.pid}-${++files}.png`),
    ...rest,
  }
}

export async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  expect(error).toBeInstanceOf(ProviderError)
  return error as ProviderError
}

/** Writes a manifest into `dir` and keys its entries as a build would. */
export async function entriesOf(dir: string, yaml: string, file = 'art.images.yaml'): Promise<KeyedEntry[]> {
  const path = join(dir, file)
  writeFileSync(path, yaml)
  return keyEntries(parseManifest(yaml, file), { manifestPath: path, root: dir, provider: 'atlas' })
}

/** A collection of small images named `names`. */
export function collection(names: string[], prompt = (name: string) => `A watercolor of ${name}`, extra = ''): string {
  return `defaults:\n  width: 64\n  height: 64\nimages:\n${names.map((n) => `  ${n}:\n    prompt: ${prompt(n)}\n${extra}`).join('')}`
}

export const names = (n: number, prefix = 'image') => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

/** A scheduler over `dir/.imagegen`, as one build would make it. */
export function build(
  dir: string,
  provider: Provider,
  options: { concurrency?: number; signal?: AbortSignal; events?: GenerateEvent[]; onEvent?: (event: GenerateEvent) => void } = {},
) {
  const cache = new ImageCache(join(dir, '.imagegen'))
  const scheduler = new Scheduler({
    provider,
    cache,
    concurrency: options.concurrency ?? 4,
    signal: options.signal,
    onEvent: (e) => {
      options.events?.push(e)
      options.onEvent?.(e)
    },
  })
  return { cache, scheduler, run: async (entries: KeyedEntry[]) => scheduler.generate(planImages(entries, cache).missing) }
}

/**
 * One test server for a test file, with fresh options and counters before each test.
 * The server starts in `beforeAll`; the returned handle forwards to it.
 */
export function useAtlasServer(): AtlasServer {
  let server: AtlasServer | undefined
  beforeAll(async () => {
    server = await startAtlasServer()
  })
  afterAll(() => server?.close())
  beforeEach(() => {
    server!.options = {}
    server!.reset()
  })
  return new Proxy({} as AtlasServer, {
    get: (_, name) => {
      const value = Reflect.get(server!, name)
      return typeof value === 'function' ? value.bind(server) : value
    },
    set: (_, name, value) => Reflect.set(server!, name, value),
  })
}
