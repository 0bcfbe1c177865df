import type { ProviderRequest } from '../providers/types'
import { formatLocation } from './errors'
import { keySpec, type PixelSpec } from './key'
import type { Manifest, ManifestEntry } from './manifest'
import { resolveReference } from './reference'

/** A manifest entry with its content key and the request that would make its image. */
export interface KeyedEntry extends ManifestEntry {
  key: string
  pixels: PixelSpec
  request: ProviderRequest
}

/**
 * Keys every entry of a manifest. Reference images are resolved and hashed here,
 * so a bad `image:` fails before anything is planned or sent.
 */
export async function keyEntries(
  manifest: Manifest,
  options: { manifestPath: string; root: string; provider: string },
): Promise<KeyedEntry[]> {
  return Promise.all(
    manifest.entries.map(async (entry) => {
      const reference = entry.spec.image ? await resolveReference(entry.spec.image, options.manifestPath, options.root, entry.location) : undefined
      const { key, pixels } = keySpec(entry.spec, options.provider, reference?.sha256)
      return { ...entry, key, pixels, request: requestFor(pixels, reference?.path) }
    }),
  )
}

/** What the provider is sent for `pixels`: the same fields, with the reference image's absolute path (`image`) for its hash. */
export function requestFor(pixels: PixelSpec, image?: string): ProviderRequest {
  const { model, prompt, width, height, seed, steps, guidance_scale, input } = pixels
  return { model, prompt, width, height, seed, steps, guidance_scale, input, image }
}

/** How messages name an entry: `file:line:col` and, in a collection, its name. */
export function entryLabel(entry: KeyedEntry): string {
  return `${formatLocation(entry.location)}${entry.name === undefined ? '' : ` \`${entry.name}\``}`
}
