import { createHash } from 'node:crypto'
import { createReadStream, readFileSync, statSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { commitFile, tempPathFor, writeFileAtomic } from './atomic'
import { listCache } from './cache-files'
import { CONTENT_TYPES, EXTENSIONS, type ImageInfo } from './image-info'
import type { ResumeState, UploadMemo, UploadRecord } from '../providers/types'
import { processAlive } from './lock'
import type { PixelSpec } from './key'

export const RECORD_VERSION = 1

/** The JSON record committed beside each cached image. */
export interface CacheRecord {
  version: typeof RECORD_VERSION
  key: string
  /** File name of the image, in the same folder as the record. */
  file: string
  spec: PixelSpec
  provider: string
  model: string
  predictionId?: string
  sha256: string
  contentType: string
  size: number
  width: number
  height: number
  format: ImageInfo['format']
  createdAt?: string
  completedAt: string
  /** Seconds the provider says it spent. */
  predictTime?: number
}

export interface CachedImage {
  record: CacheRecord
  /** Absolute path of the image file. */
  path: string
}

/** A prediction that was submitted (and so paid for) but whose image is not cached yet. */
export interface PendingPrediction {
  key: string
  provider: string
  submittedAt: string
  /** The provider's own resume state (opaque here but for `id`). */
  state: ResumeState
}

/** A temp file of `tempPathFor`: `.<name>.<pid>.<hex>.tmp`. */
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/
/**
 * A temp file of a process that is gone, untouched this long, was left by a crash. Both
 * conditions: a pid may be another container's (a shared volume), and a live download
 * touches its file all the time.
 */
export const STALE_TEMP_MS = 60 * 60 * 1000

const GITIGNORE = `# Written by unplugin-imagegen. Commit this folder, except what is below.
*.tmp
pending/
locks/
uploads/
`

/**
 * The content-addressed store under `.imagegen/`: `images/<key>.<ext>` plus
 * `images/<key>.json`, committed with the project; `pending/` journals predictions
 * in flight so that an interrupted run resumes them instead of paying again; `uploads/`
 * remembers where reference images were uploaded (short-lived URLs: not committed).
 */
export class ImageCache {
  readonly imagesDir: string
  readonly pendingDir: string
  readonly uploadsDir: string
  readonly locksDir: string
  private prepared?: Promise<void>

  constructor(readonly dir: string) {
    this.imagesDir = join(dir, 'images')
    this.pendingDir = join(dir, 'pending')
    this.uploadsDir = join(dir, 'uploads')
    this.locksDir = join(dir, 'locks')
  }

  /**
   * A stat and a small JSON read; no image is decoded. Synchronous: a record is a few hundred
   * bytes, and thousands of small reads in flight through the thread pool cost several times
   * what reading them in turn does.
   */
  lookup(key: string): CachedImage | undefined {
    let record: CacheRecord
    try {
      record = JSON.parse(readFileSync(this.recordPath(key), 'utf8')) as CacheRecord
    } catch {
      return undefined
    }
    if (record.version !== RECORD_VERSION || record.key !== key) return undefined
    const path = join(this.imagesDir, record.file)
    if (statSync(path, { throwIfNoEntry: false })?.size !== record.size) return undefined
    return { record, path }
  }

  /** A fresh temp path in the images folder, for a download to be committed later. */
  async tempFile(key: string): Promise<string> {
    await this.prepare()
    return tempPathFor(join(this.imagesDir, key))
  }

  /**
   * Gives a downloaded, checked image its real name, then writes its record.
   * The record is written last: an entry exists only once both are complete.
   */
  async commit(
    temp: string,
    info: ImageInfo,
    fields: Omit<CacheRecord, 'version' | 'file' | 'sha256' | 'size' | 'contentType' | 'width' | 'height' | 'format'>,
  ): Promise<CachedImage> {
    const { sha256, size } = await hashFile(temp)
    const file = `${fields.key}.${EXTENSIONS[info.format]}`
    const path = join(this.imagesDir, file)
    await commitFile(temp, path)
    const record: CacheRecord = {
      version: RECORD_VERSION,
      ...fields,
      file,
      sha256,
      size,
      contentType: CONTENT_TYPES[info.format],
      width: info.width,
      height: info.height,
      format: info.format,
    }
    await writeFileAtomic(this.recordPath(fields.key), `${JSON.stringify(record, null, 2)}\n`)
    return { record, path }
  }

  /** The journaled prediction of `key`; undefined when there is none or it is not one of ours. */
  async readPending(key: string): Promise<PendingPrediction | undefined> {
    let data: Partial<PendingPrediction> | undefined
    try {
      data = JSON.parse(await readFile(this.pendingPath(key), 'utf8')) as Partial<PendingPrediction>
    } catch {
      return undefined
    }
    const valid = data?.key === key && typeof data.provider === 'string' && typeof data.state?.id === 'string'
    return valid ? (data as PendingPrediction) : undefined
  }

  async writePending(pending: PendingPrediction): Promise<void> {
    await this.prepare()
    await writeFileAtomic(this.pendingPath(pending.key), JSON.stringify(pending))
  }

  async clearPending(key: string): Promise<void> {
    await rm(this.pendingPath(key), { force: true })
  }

  /** Uploaded reference images of one provider, by content hash. */
  uploads(provider: string): UploadMemo {
    const folder = join(this.uploadsDir, provider.replace(/[^\w.-]+/g, '_'))
    const path = (sha256: string) => join(folder, `${sha256.replace(/[^0-9a-f]/gi, '')}.json`)
    return {
      get: async (sha256) => {
        try {
          const record = JSON.parse(await readFile(path(sha256), 'utf8')) as Partial<UploadRecord>
          return typeof record.url === 'string' && typeof record.uploadedAt === 'string' ? (record as UploadRecord) : undefined
        } catch {
          return undefined
        }
      },
      set: async (sha256, record) => {
        await this.prepare()
        await mkdir(folder, { recursive: true })
        await writeFileAtomic(path(sha256), `${JSON.stringify(record, null, 2)}\n`)
      },
    }
  }

  /** Keys of every record in the images folder (temp files and other names left out). */
  async keys(): Promise<string[]> {
    return (await listCache(this.imagesDir))?.records ?? []
  }


  recordPath(key: string): string {
    return join(this.imagesDir, `${key}.json`)
  }

  private pendingPath(key: string): string {
    return join(this.pendingDir, `${key}.json`)
  }

  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await mkdir(this.imagesDir, { recursive: true })
      await mkdir(this.pendingDir, { recursive: true })
      await Promise.all([sweepTemps(this.imagesDir), sweepTemps(this.pendingDir)])
      // Ours (it starts with our header) is kept current as transient folders are added;
      // a .gitignore the user wrote is left alone.
      const path = join(this.dir, '.gitignore')
      const current = await readFile(path, 'utf8').catch(() => undefined)
      if (current === undefined || (current !== GITIGNORE && current.startsWith(GITIGNORE.split('\n')[0]!))) {
        await writeFileAtomic(path, GITIGNORE)
      }
    })()
    return this.prepared
  }
}

/**
 * Removes the temp files a killed process left in `dir` (a half download can be megabytes).
 * Best effort: a sweep that fails must not fail the write that set it off.
 */
async function sweepTemps(dir: string): Promise<void> {
  const now = Date.now()
  const names = await readdir(dir).catch(() => [])
  await Promise.all(
    names.map(async (name) => {
      const pid = Number(TEMP_NAME.exec(name)?.[1])
      if (!pid || pid === process.pid || processAlive(pid)) return
      const path = join(dir, name)
      const touched = await stat(path).then((info) => info.mtimeMs, () => now)
      if (now - touched > STALE_TEMP_MS) await rm(path, { force: true }).catch(() => {})
    }),
  )
}

export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return { sha256: hash.digest('hex'), size }
}
