import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { readJsonSync, writeFileAtomic } from './atomic'
import type { CachedImage } from './cache'
import { canonicalJSON } from './canonical'
import { entryLabel, type KeyedEntry } from './entries'
import { ImagegenError } from './errors'
import { decodeImage, EXTENSIONS, ImageReadError, loadSharp, type ImageFormat } from './image-info'
import { damagedHint } from './plan'
import type { ImageSpec } from './schema'

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
  /** `original` when the main file is the cached original itself (`format: original`), not a copy here. */
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

  /** `entry`, when given, locates the error of an original sharp cannot decode (an `ImagegenError` with its fix). */
  derive(original: CachedImage, transform: Transform, entry?: KeyedEntry): Promise<DerivedImage> {
    const key = derivedKey(original, transform)
    let job = this.inFlight.get(key)
    if (!job) {
      const found = this.lookup(key, original)
      if (found) return Promise.resolve(found)
      job = this.make(key, original, transform, entry).finally(() => this.inFlight.delete(key))
      this.inFlight.set(key, job)
    }
    return job
  }

  /** One small JSON read and a stat per file, synchronously (see `ImageCache.lookup`). */
  private lookup(key: string, original: CachedImage): DerivedImage | undefined {
    const record = readJsonSync(join(this.dir, `${key}.json`)) as DerivedRecord | undefined
    if (record?.version !== DERIVE_VERSION) return undefined
    // names of our own making, never a path elsewhere
    if (![record.main, ...record.widths].every((file) => ('original' in file && file.original) || /^[0-9a-f]{32}-\d+\.\w+$/.test(file.name))) return undefined
    const image = this.image(record, original)
    return [image.main, ...image.widths].every((file) => existsSync(file.path)) ? image : undefined
  }

  private async make(key: string, original: CachedImage, transform: Transform, entry: KeyedEntry | undefined): Promise<DerivedImage> {
    await mkdir(this.dir, { recursive: true })
    const [source, sharp] = await Promise.all([readFile(original.path), loadSharp()])
    // An original that does not decode fails here, named, not as a raw error of sharp's in the middle of a build.
    await decodeImage(source).catch((error: unknown) => {
      if (!(error instanceof ImageReadError)) throw error
      const where = entry ? `${entryLabel(entry)}: ` : ''
      const hint = entry ? damagedHint(entry, original.path) : `Restore it from git (\`git checkout -- ${original.path}\`).`
      throw new ImagegenError('IO', `${where}the cached image ${original.path} cannot be decoded: ${error.message}.`, { hint, loc: entry?.location })
    })
    const { width, height } = original.record
    const format = transform.format === 'original' ? original.record.format : transform.format
    const { quality } = transform
    const options = { webp: { quality }, avif: { quality }, jpeg: { quality, mozjpeg: true }, png: { compressionLevel: 9 } }[format]

    const encode = async (targetWidth: number) => {
      const name = `${key.slice(0, 32)}-${targetWidth}.${EXTENSIONS[format]}`
      const file = { name, width: targetWidth, height: Math.round((height * targetWidth) / width) }
      let pipeline = sharp(source)
      if (targetWidth !== width) pipeline = pipeline.resize(file.width, file.height)
      await writeFileAtomic(join(this.dir, file.name), await pipeline.toFormat(format, options).toBuffer())
      return file
    }

    // A tiny blurred WebP as a data URL, to show while the real image loads.
    const blurPlaceholder = async () => {
      const tiny = await sharp(source)
        .resize(PLACEHOLDER_WIDTH, Math.max(1, Math.round((height * PLACEHOLDER_WIDTH) / width)))
        .blur(1)
        .webp({ quality: 40 })
        .toBuffer()
      return `data:image/webp;base64,${tiny.toString('base64')}`
    }
    const smaller = [...new Set(transform.widths ?? [])].filter((w) => w < width).sort((a, b) => a - b)
    const record: DerivedRecord = {
      version: DERIVE_VERSION,
      format,
      main: transform.format === 'original' ? { name: original.record.file, width, height, original: true } : await encode(width),
      widths: await Promise.all(smaller.map(encode)),
      placeholder: transform.placeholder === 'blur' ? await blurPlaceholder() : undefined,
    }
    await writeFileAtomic(join(this.dir, `${key}.json`), JSON.stringify(record))
    return this.image(record, original)
  }

  private image(record: DerivedRecord, original: CachedImage): DerivedImage {
    const { original: isOriginal, ...main } = record.main
    return {
      format: record.format,
      main: { ...main, path: isOriginal ? original.path : join(this.dir, main.name) },
      widths: record.widths.map((file) => ({ ...file, path: join(this.dir, file.name) })),
      placeholder: record.placeholder,
    }
  }
}

let sharpPackage: { version: string; config?: { libvips?: string } } | undefined
/** The versions that decide sharp's output, read from its package.json (which it does not export) without loading sharp. */
const sharpVersions = () =>
  (sharpPackage ??= readJsonSync(join(dirname(createRequire(import.meta.url).resolve('sharp')), '..', 'package.json')) as typeof sharpPackage)!

function derivedKey(original: CachedImage, transform: Transform): string {
  const sharp = sharpVersions()
  const format = transform.format === 'original' ? original.record.format : transform.format
  const inputs = {
    v: DERIVE_VERSION,
    sharp: sharp.version,
    libvips: sharp.config?.libvips ?? 'unknown',
    original: original.record.sha256,
    format: transform.format,
    // Quality matters wherever something lossy (not PNG) is encoded: the main file, or the widths of a lossy original.
    quality: format !== 'png' ? transform.quality : undefined,
    widths: transform.widths ? [...new Set(transform.widths)].sort((a, b) => a - b) : undefined,
    placeholder: transform.placeholder,
  }
  return createHash('sha256').update(canonicalJSON(inputs)).digest('hex')
}

