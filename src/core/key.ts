import { createHash } from 'node:crypto'
import type { ProviderRequest } from '../providers/types'
import { canonicalJSON } from './canonical'
import type { ImageSpec } from './schema'

/** Bumped when the meaning of a key changes; every key then changes with it. */
export const KEY_SCHEMA_VERSION = 1

/**
 * Exactly what decides an image's pixels: the provider's request, but for the reference
 * image's path, plus the provider and a schema version. Nothing else may enter the key.
 */
export interface PixelSpec extends Omit<ProviderRequest, 'image'> {
  v: typeof KEY_SCHEMA_VERSION
  provider: string
  /** SHA-256 of the reference image's bytes (its path and upload URL do not matter). */
  image?: string
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

/**
 * The seed used when a spec names none: taken from the hash of everything else,
 * so the request always carries an explicit seed and a lost image can be made again.
 */
export function deriveSeed(pixels: Omit<PixelSpec, 'seed'>): number {
  return Number.parseInt(sha256(canonicalJSON({ ...pixels, purpose: 'seed' })).slice(0, 8), 16)
}

export function keySpec(spec: ImageSpec, provider: string, referenceHash?: string): { key: string; pixels: PixelSpec } {
  const { model, prompt, width, height, steps, guidance_scale } = spec
  const input = spec.input && Object.keys(spec.input).length > 0 ? spec.input : undefined
  const unseeded: Omit<PixelSpec, 'seed'> = { v: KEY_SCHEMA_VERSION, provider, model, prompt, width, height, steps, guidance_scale, input }
  unseeded.image = referenceHash
  const pixels: PixelSpec = { ...unseeded, seed: spec.seed ?? deriveSeed(unseeded) }
  // Round-tripping through the canonical form drops undefined fields from the record too.
  const canonical = canonicalJSON(pixels)
  return { key: sha256(canonical), pixels: JSON.parse(canonical) as PixelSpec }
}
