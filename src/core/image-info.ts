import type sharp from 'sharp'
import { loadSharp } from './sharp'

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'avif'

export interface ImageInfo {
  format: ImageFormat
  width: number
  height: number
}

export const CONTENT_TYPES: Record<ImageFormat, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  avif: 'image/avif',
}

export const EXTENSIONS: Record<ImageFormat, string> = { png: 'png', jpeg: 'jpg', webp: 'webp', avif: 'avif' }

/**
 * Reads format and size from the file's header (no pixels are decoded).
 * Returns undefined for anything that is not a PNG, JPEG, WebP or AVIF image.
 */
export async function readImageInfo(input: string | Uint8Array): Promise<ImageInfo | undefined> {
  let meta: sharp.Metadata
  try {
    meta = await (await loadSharp())(input).metadata()
  } catch {
    return undefined
  }
  const format = meta.format === 'heif' ? (meta.compression === 'av1' ? 'avif' : undefined) : meta.format
  if (format !== 'png' && format !== 'jpeg' && format !== 'webp' && format !== 'avif') return undefined
  if (!meta.width || !meta.height) return undefined
  return { format, width: meta.width, height: meta.height }
}
