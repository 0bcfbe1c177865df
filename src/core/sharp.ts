import { createRequire } from 'node:module'

type Sharp = typeof import('sharp')

let loading: Promise<Sharp> | undefined

/** sharp, loaded the first time pixels are needed: a warm build never needs it. */
export function loadSharp(): Promise<Sharp> {
  loading ??= import('sharp').then((module) => (module as unknown as { default: Sharp }).default ?? (module as unknown as Sharp))
  return loading
}

let versions: { sharp: string; libvips: string } | undefined

/** The versions that decide sharp's output, read from its package.json without loading it. */
export function sharpVersions(): { sharp: string; libvips: string } {
  if (!versions) {
    const pkg = createRequire(import.meta.url)('sharp/package.json') as { version: string; config?: { libvips?: string } }
    versions = { sharp: pkg.version, libvips: pkg.config?.libvips ?? 'unknown' }
  }
  return versions
}
