import type sharp from 'sharp'

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'avif'

export interface ImageInfo {
  format: ImageFormat
  width: number
  height: number
}

export const EXTENSIONS: Record<ImageFormat, string> = { png: 'png', jpeg: 'jpg', webp: 'webp', avif: 'avif' }

let loading: Promise<typeof sharp> | undefined

/** sharp, loaded the first time pixels are needed: a warm build never needs it. */
export function loadSharp(): Promise<typeof sharp> {
  loading ??= import('sharp').then((module) => module.default)
  return loading
}

/**
 * Reads format and size from the file's header (no pixels are decoded).
 * Returns undefined for anything that is not a PNG, JPEG, WebP or AVIF image.
 */
export async function readImageInfo(input: string | Uint8Array): Promise<ImageInfo | undefined> {
  const meta = await loadSharp().then((sharp) => sharp(input).metadata()).catch(() => undefined)
  if (!meta) return undefined
  const format = meta.format === 'heif' ? (meta.compression === 'av1' ? 'avif' : undefined) : meta.format
  if (format !== 'png' && format !== 'jpeg' && format !== 'webp' && format !== 'avif') return undefined
  if (!meta.width || !meta.height) return undefined
  return { format, width: meta.width, height: meta.height }
}
