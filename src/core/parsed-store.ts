import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { readJsonSync, writeFileAtomic } from './atomic'
import { requestFor, type KeyedEntry } from './entries'
import type { Manifest } from './manifest'

/** Bumped when what is stored, or how it is parsed and keyed, changes. */
const STORE_VERSION = 2

/** A stored manifest is about 5 times its YAML: room for the largest manifest read (`MANIFEST_LIMIT`, 8 MB). */
const MAX_STORED_BYTES = 64 * 1024 * 1024

export type ParsedManifest = { manifest: Manifest; entries: KeyedEntry[] }

/** What is stored: the kind and the keyed entries, less each `request` (made again from `pixels`); a store holds only manifests without reference images. */
type Stored = { kind: Manifest['kind']; entries: Omit<KeyedEntry, 'request'>[] }

/**
 * Manifests already parsed, validated and keyed, by the hash of their bytes and of everything
 * else that decides the result (the name shown in messages, the provider, this package's
 * version). A warm build reads one small JSON file per manifest instead of loading and running
 * `yaml`, `zod` and the key hashes. Kept beside the derived files; rebuilt whenever missing.
 */
export class ParsedStore {
  constructor(
    private readonly dir: string,
    private readonly salt: string,
  ) {}

  digest(bytes: Uint8Array, display: string, provider: string): string {
    return createHash('sha256').update(`${STORE_VERSION}\0${this.salt}\0${provider}\0${display}\0`).update(bytes).digest('hex')
  }

  /** The manifest stored under `digest` (its `manifest.entries` are the keyed entries themselves); undefined when none is, or what is there is not whole. */
  get(digest: string): ParsedManifest | undefined {
    const stored = readJsonSync(join(this.dir, `${digest}.json`), MAX_STORED_BYTES) as Partial<Stored> | undefined
    // Anything else found there (a file cut short, another version's) is a miss, not an error.
    if ((stored?.kind !== 'single' && stored?.kind !== 'collection') || !Array.isArray(stored.entries) || stored.entries.length === 0) return undefined
    const entries = stored.entries.map((entry) => ({ ...entry, request: requestFor(entry.pixels) }))
    return { manifest: { kind: stored.kind, entries }, entries }
  }

  /** Stores a manifest without reference images (their files may change under the same bytes). */
  async set(digest: string, { manifest, entries }: ParsedManifest): Promise<void> {
    const stored: Stored = { kind: manifest.kind, entries: entries.map(({ request, ...entry }) => entry) }
    await mkdir(this.dir, { recursive: true })
    await writeFileAtomic(join(this.dir, `${digest}.json`), JSON.stringify(stored))
  }
}
