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

/** Bytes enough to recognize every format below. */
export const SNIFF_LENGTH = 64

/**
 * What a file is, from its first bytes. A storage host's content type is not evidence:
 * error pages come back as `200 image/png` often enough, and images as `octet-stream`.
 */
export function sniffImageType(head: Uint8Array): `image/${ImageFormat}` | undefined {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength)
  if (b.toString('latin1', 0, 8) === '\x89PNG\r\n\x1a\n') return 'image/png'
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg'
  if (b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'image/webp'
  if (b.length >= 16 && b.toString('latin1', 4, 8) === 'ftyp') {
    // the major brand, then the compatible brands, within the ftyp box
    const end = Math.min(b.readUInt32BE(0), b.length)
    for (let at = 8; at + 4 <= end; at += at === 8 ? 8 : 4) {
      const brand = b.toString('latin1', at, at + 4)
      if (brand === 'avif' || brand === 'avis') return 'image/avif'
    }
  }
  return undefined
}

/** A short, printable taste of what came instead of an image, for the error message. */
export function describeBytes(head: Uint8Array): string {
  const text = Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim()
  return text ? `it starts with "${text.slice(0, 40)}"` : 'it is empty'
}
