import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { readJsonSync, writeFileAtomic } from './atomic'
import type { KeyedEntry } from './entries'
import type { Manifest } from './manifest'

/** Bumped when what is stored, or how it is parsed and keyed, changes. */
const STORE_VERSION = 1

export type ParsedManifest = { manifest: Manifest; entries: KeyedEntry[] }

/**
 * Manifests already parsed, validated and keyed, by the hash of their bytes and of everything
 * else that decides the result (the name shown in messages, the provider, this package's
 * version). A warm build reads one small JSON file per manifest instead of parsing YAML and
 * hashing specs. Kept beside the derived files; rebuilt whenever missing.
 */
export class ParsedStore {
  constructor(
    private readonly dir: string,
    private readonly salt: string,
  ) {}

  digest(bytes: Uint8Array, display: string, provider: string): string {
    return createHash('sha256').update(`${STORE_VERSION}\0${this.salt}\0${provider}\0${display}\0`).update(bytes).digest('hex')
  }

  get(digest: string): ParsedManifest | undefined {
    const parsed = readJsonSync(join(this.dir, `${digest}.json`)) as Partial<ParsedManifest> | undefined
    // Anything else found there (a file cut short, another version's) is a miss, not an error.
    const { manifest, entries } = parsed ?? {}
    const whole = Array.isArray(manifest?.entries) && Array.isArray(entries) && entries.length === manifest.entries.length
    return whole ? (parsed as ParsedManifest) : undefined
  }

  async set(digest: string, parsed: ParsedManifest): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    await writeFileAtomic(join(this.dir, `${digest}.json`), JSON.stringify(parsed))
  }
}
