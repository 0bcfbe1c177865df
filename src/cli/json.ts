/** The `--json` documents (schema version 1, documented in the README). */
import type { KeyedEntry } from '../core/entries'

export const JSON_VERSION = 1

export interface JsonEntry {
  /** The manifest, relative to the project root. */
  manifest: string
  line: number
  column: number
  /** The entry's name in a collection; null for a single-image manifest. */
  name: string | null
}

export type GenerateImageState = 'cached' | 'generated' | 'failed' | 'pending' | 'missing'

export interface GenerateJsonImage {
  key: string
  state: GenerateImageState
  /** Every manifest entry that asks for this image (identical specs share one). */
  entries: JsonEntry[]
  prompt: string
  width: number
  height: number
  /** The cached image, relative to the project root; null unless cached or generated. */
  file: string | null
  predictionId: string | null
  /** Why it failed; only for `failed`. */
  error?: string
}

export interface GenerateJson {
  version: typeof JSON_VERSION
  command: 'generate'
  ok: boolean
  exitCode: number
  root: string
  cacheDir: string
  provider: string
  dryRun: boolean
  interrupted: boolean
  maxNewImages: number
  /** Whether the images to generate fit under `maxNewImages`. */
  withinLimit: boolean
  summary: { manifests: number; entries: number; images: number; cached: number; toGenerate: number; generated: number; failed: number; pending: number }
  seconds: number
  images: GenerateJsonImage[]
  /** The error message when `ok` is false. */
  error?: string
}

export interface StatusJson {
  version: typeof JSON_VERSION
  command: 'status'
  ok: boolean
  exitCode: number
  root: string
  cacheDir: string
  provider: string
  summary: { manifests: number; entries: number; images: number; cached: number; missing: number }
  entries: Array<JsonEntry & { key: string; state: 'cached' | 'missing'; file: string | null; pendingPredictionId: string | null }>
}

/** What `--json` prints when a command cannot start (bad arguments, config or manifests). */
export interface ErrorJson {
  version: typeof JSON_VERSION
  command: string
  ok: false
  exitCode: number
  error: string
}

export function jsonEntry(entry: KeyedEntry): JsonEntry {
  return { manifest: entry.location.file, line: entry.location.line, column: entry.location.column, name: entry.name ?? null }
}
