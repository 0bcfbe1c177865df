import type sharp from 'sharp'
import { clip, ImagegenError } from './errors'

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'avif'

export interface ImageInfo {
  format: ImageFormat
  width: number
  height: number
}

export const EXTENSIONS: Record<ImageFormat, string> = { png: 'png', jpeg: 'jpg', webp: 'webp', avif: 'avif' }

/** Our bound on an image's bytes, cached or downloaded: none of ours comes near it; more means something is wrong. */
export const MAX_IMAGE_BYTES = 50 * 1024 * 1024
/** sharp's own bound on an image's pixels (its `limitInputPixels` default, 0x3FFF²): over it, sharp refuses to decode. */
export const SHARP_PIXEL_LIMIT = 0x3fff * 0x3fff

let loading: Promise<typeof sharp> | undefined

/**
 * sharp, loaded the first time pixels are needed: a warm build never needs it. A failure is our install's, never an
 * image's: it rejects with an `ImagegenError` naming sharp and the fix (see https://sharp.pixelplumbing.com/install),
 * and the next call tries again.
 */
export function loadSharp(): Promise<typeof sharp> {
  loading ??= import('sharp').then(
    (module) => module.default,
    (error: unknown) => {
      loading = undefined
      const reason = `sharp, the image library imagegen uses, failed to load (${clip(error instanceof Error ? error.message : String(error), 160)}).`
      const hint = 'Reinstall it with its native part for this platform: `npm install --include=optional sharp` (see https://sharp.pixelplumbing.com/install).'
      throw new ImagegenError('IO', reason, { hint, cause: error })
    },
  )
  return loading
}

/**
 * What is wrong with an image's bytes: `format` when they are no image we take, `too-large` over sharp's pixel limit
 * (a decompression bomb, or a lying header), `pixels` when they do not decode whole (cut short, corrupt).
 */
export class ImageReadError extends Error {
  constructor(
    readonly stage: 'format' | 'too-large' | 'pixels',
    message: string,
  ) {
    super(message)
  }
}

/** sharp's error about an image as an `ImageReadError`, its pixel limit named as such. */
function readError(stage: 'format' | 'pixels', error: unknown): ImageReadError {
  const text = error instanceof Error ? error.message : String(error)
  if (/pixel limit/i.test(text)) return new ImageReadError('too-large', `it has more pixels than sharp decodes (\`limitInputPixels\`, ${SHARP_PIXEL_LIMIT.toLocaleString('en')} pixels)`)
  return new ImageReadError(stage, `sharp says: ${clip(text, 120)}`)
}

/**
 * Reads format and size from the file's header (no pixels are decoded). Throws an `ImageReadError` (`format`, `too-large`) for
 * anything that is not a PNG, JPEG, WebP or AVIF image sharp can open, and `loadSharp`'s error when sharp cannot load.
 */
export async function readImageInfo(input: string | Uint8Array): Promise<ImageInfo> {
  const sharp = await loadSharp()
  const meta = await sharp(input).metadata().catch((error: unknown) => {
    throw readError('format', error)
  })
  const format = meta.format === 'heif' ? (meta.compression === 'av1' ? 'avif' : undefined) : meta.format
  if ((format !== 'png' && format !== 'jpeg' && format !== 'webp' && format !== 'avif') || !meta.width || !meta.height) {
    throw new ImageReadError('format', `sharp reads it as ${meta.format ?? 'nothing it knows'}`)
  }
  return { format, width: meta.width, height: meta.height }
}

/**
 * Decodes every pixel, so that a file cut short or corrupt fails here (an `ImageReadError`, `pixels`), not in a later build.
 * Into a raw buffer, dropped at once: a plain decode (about 8 ms for 1024 × 1024), where `stats()` also measured every
 * channel's histogram and sharpness (about 60 ms).
 */
export async function decodeImage(input: string | Uint8Array): Promise<void> {
  const sharp = await loadSharp()
  await sharp(input, { failOn: 'error' })
    .raw()
    .toBuffer()
    .catch((error: unknown) => {
      throw readError('pixels', error)
    })
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
