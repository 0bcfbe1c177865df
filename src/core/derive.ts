import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type sharp from 'sharp'
import { writeFileAtomic } from './atomic'
import type { CachedImage } from './cache'
import { canonicalJSON } from './canonical'
import { EXTENSIONS, type ImageFormat } from './image-info'
import type { ImageSpec } from './schema'
import { loadSharp, sharpVersions } from './sharp'

/** Bumped when derived files would come out differently for the same inputs. */
const DERIVE_VERSION = 1
/** Width of the blur placeholder; small enough for its data URL to stay well under 1 KB. */
const PLACEHOLDER_WIDTH = 16

/** The part of a spec that decides the emitted files (never the pixels of the original). */
export type Transform = Pick<ImageSpec, 'format' | 'quality' | 'widths' | 'placeholder'>

export interface DerivedFile {
  path: string
  /** File name, unique per content: the name it is emitted under. */
  name: string
  width: number
  height: number
}

export interface DerivedImage {
  format: ImageFormat
  /** The main file, at the original's full size. */
  main: DerivedFile
  /** Smaller copies for a `srcset`, ascending, when `widths` is set. */
  widths: DerivedFile[]
  placeholder?: string
}

interface DerivedRecord {
  version: typeof DERIVE_VERSION
  format: ImageFormat
  main: Omit<DerivedFile, 'path'> & { original?: true }
  widths: Omit<DerivedFile, 'path'>[]
  placeholder?: string
}

/**
 * Web-ready files made from a cached original with sharp: the asked format and quality,
 * smaller widths for a `srcset` (never upscaled), a blur placeholder. They are kept in
 * `dir` under a key of the original's hash, the transform and sharp's version; a warm
 * lookup reads one small JSON record and decodes nothing. State belongs to the instance.
 */
export class Deriver {
  private readonly inFlight = new Map<string, Promise<DerivedImage>>()

  constructor(readonly dir: string) {}

  derive(original: CachedImage, transform: Transform): Promise<DerivedImage> {
    const key = derivedKey(original, transform)
    let job = this.inFlight.get(key)
    if (!job) {
      const found = this.lookup(key, original)
      job = found ? Promise.resolve(found) : this.make(key, original, transform)
      this.inFlight.set(key, job)
      const forget = () => this.inFlight.delete(key)
      job.then(forget, forget)
    }
    return job
  }

  /** One small JSON read and a stat per file, synchronously (see `ImageCache.lookup`). */
  private lookup(key: string, original: CachedImage): DerivedImage | undefined {
    let record: DerivedRecord
    try {
      record = JSON.parse(readFileSync(join(this.dir, `${key}.json`), 'utf8')) as DerivedRecord
    } catch {
      return undefined
    }
    if (record.version !== DERIVE_VERSION) return undefined
    const { original: isOriginal, ...main } = record.main
    const files = [
      { ...main, path: isOriginal ? original.path : join(this.dir, main.name) },
      ...record.widths.map((file) => ({ ...file, path: join(this.dir, file.name) })),
    ]
    if (files.some((file) => !existsSync(file.path))) return undefined
    return { format: record.format, main: files[0]!, widths: files.slice(1), placeholder: record.placeholder }
  }

  private async make(key: string, original: CachedImage, transform: Transform): Promise<DerivedImage> {
    await mkdir(this.dir, { recursive: true })
    const [source, sharp] = await Promise.all([readFile(original.path), loadSharp()])
    const { width, height } = original.record
    const keepOriginal = transform.format === 'original'
    const format: ImageFormat = keepOriginal ? original.record.format : (transform.format as ImageFormat)

    const encode = async (targetWidth: number): Promise<DerivedFile> => {
      const targetHeight = Math.round((height * targetWidth) / width)
      const name = `${key.slice(0, 32)}-${targetWidth}.${EXTENSIONS[format]}`
      let pipeline = sharp(source)
      if (targetWidth !== width) pipeline = pipeline.resize(targetWidth, targetHeight)
      await writeFileAtomic(join(this.dir, name), await encoder(pipeline, format, transform.quality).toBuffer())
      return { path: join(this.dir, name), name, width: targetWidth, height: targetHeight }
    }

    const main: DerivedFile = keepOriginal
      ? { path: original.path, name: original.record.file, width, height }
      : await encode(width)
    const smaller = [...new Set(transform.widths ?? [])].filter((w) => w < width).sort((a, b) => a - b)
    const widths = await Promise.all(smaller.map(encode))
    const placeholder = transform.placeholder === 'blur' ? await blurPlaceholder(sharp, source, width, height) : undefined

    const record: DerivedRecord = {
      version: DERIVE_VERSION,
      format,
      // `format: original` emits the cached file itself; it is not copied here.
      main: keepOriginal ? { name: main.name, width, height, original: true } : { name: main.name, width, height },
      widths: widths.map(({ name, width: w, height: h }) => ({ name, width: w, height: h })),
      placeholder,
    }
    await writeFileAtomic(join(this.dir, `${key}.json`), JSON.stringify(record))
    return { format, main, widths, placeholder }
  }
}

function derivedKey(original: CachedImage, transform: Transform): string {
  const inputs = {
    v: DERIVE_VERSION,
    ...sharpVersions(),
    original: original.record.sha256,
    format: transform.format,
    // Quality matters wherever something lossy is encoded: the main file, or the widths of a lossy original.
    quality: lossy(transform.format === 'original' ? original.record.format : transform.format) ? transform.quality : undefined,
    widths: transform.widths ? [...new Set(transform.widths)].sort((a, b) => a - b) : undefined,
    placeholder: transform.placeholder,
  }
  return createHash('sha256').update(canonicalJSON(inputs)).digest('hex')
}

const lossy = (format: ImageFormat) => format !== 'png'

function encoder(pipeline: sharp.Sharp, format: ImageFormat, quality: number): sharp.Sharp {
  switch (format) {
    case 'webp':
      return pipeline.webp({ quality })
    case 'avif':
      return pipeline.avif({ quality })
    case 'jpeg':
      return pipeline.jpeg({ quality, mozjpeg: true })
    case 'png':
      return pipeline.png({ compressionLevel: 9 })
  }
}

/** A tiny blurred WebP as a data URL, to show while the real image loads. */
async function blurPlaceholder(sharp: typeof import('sharp'), source: Buffer, width: number, height: number): Promise<string> {
  const tiny = await sharp(source)
    .resize(PLACEHOLDER_WIDTH, Math.max(1, Math.round((height * PLACEHOLDER_WIDTH) / width)))
    .blur(1)
    .webp({ quality: 40 })
    .toBuffer()
  return `data:image/webp;base64,${tiny.toString('base64')}`
}
