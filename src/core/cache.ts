import { createHash } from 'node:crypto'
import { createReadStream, existsSync, statSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { commitFile, readJsonSync, tempPathFor, writeFileAtomic } from './atomic'
import { EXTENSIONS, type ImageInfo } from './image-info'
import type { ResumeState, UploadMemo, UploadRecord } from '../providers/types'
import { processAlive } from './lock'
import type { PixelSpec } from './key'

const RECORD_VERSION = 1

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

const RECORD_NAME = /^([0-9a-f]{64})\.json$/
const IMAGE_NAME = new RegExp(`^([0-9a-f]{64})\\.(${Object.values(EXTENSIONS).join('|')})$`)
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
  readonly locksDir: string
  private prepared?: Promise<void>

  constructor(readonly dir: string) {
    this.imagesDir = join(dir, 'images')
    this.locksDir = join(dir, 'locks')
  }

  /**
   * A stat and a small JSON read; no image is decoded. Synchronous: a record is a few hundred
   * bytes, and thousands of small reads in flight through the thread pool cost several times
   * what reading them in turn does.
   */
  lookup(key: string): CachedImage | undefined {
    const record = readJsonSync(this.recordPath(key)) as CacheRecord | undefined
    if (record?.version !== RECORD_VERSION || record.key !== key) return undefined
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
    fields: Omit<CacheRecord, 'version' | 'file' | 'sha256' | 'size' | 'contentType' | keyof ImageInfo>,
  ): Promise<CachedImage> {
    const { sha256, size } = await hashFile(temp)
    const { format, width, height } = info
    const file = `${fields.key}.${EXTENSIONS[format]}`
    const path = join(this.imagesDir, file)
    await commitFile(temp, path)
    const record: CacheRecord = { version: RECORD_VERSION, ...fields, file, sha256, size, contentType: `image/${format}`, width, height, format }
    await writeFileAtomic(this.recordPath(fields.key), `${JSON.stringify(record, null, 2)}\n`)
    return { record, path }
  }

  /** The journaled prediction of `key`; undefined when there is none or it is not one of ours. */
  async readPending(key: string): Promise<PendingPrediction | undefined> {
    const data = readJsonSync(this.pendingPath(key)) as Partial<PendingPrediction> | undefined
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
    const folder = join(this.dir, 'uploads', provider.replace(/[^\w.-]+/g, '_'))
    const path = (sha256: string) => join(folder, `${sha256.replace(/[^0-9a-f]/gi, '')}.json`)
    return {
      get: async (sha256) => {
        const record = readJsonSync(path(sha256)) as Partial<UploadRecord> | undefined
        return typeof record?.url === 'string' && typeof record.uploadedAt === 'string' ? (record as UploadRecord) : undefined
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
    return join(this.dir, 'pending', `${key}.json`)
  }

  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      const pendingDir = join(this.dir, 'pending')
      await mkdir(this.imagesDir, { recursive: true })
      await mkdir(pendingDir, { recursive: true })
      await Promise.all([sweepTemps(this.imagesDir), sweepTemps(pendingDir)])
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
      if (!pid || processAlive(pid)) return
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

/**
 * The committed files of the images folder: `records`, the keys that have a record file, and `images`,
 * the image file names by key (normally one per key). Temp files and anything else are left out.
 * Undefined when the folder does not exist.
 */
export async function listCache(imagesDir: string): Promise<{ records: string[]; images: Map<string, string[]> } | undefined> {
  if (!existsSync(imagesDir)) return undefined
  const names = await readdir(imagesDir)
  const records: string[] = []
  const images = new Map<string, string[]>()
  for (const name of names.sort()) {
    const record = RECORD_NAME.exec(name)
    if (record) records.push(record[1]!)
    const image = IMAGE_NAME.exec(name)
    if (image) images.set(image[1]!, [...(images.get(image[1]!) ?? []), name])
  }
  return { records, images }
}

/** Reads a record and checks that it belongs to its key and names a file of that key. */
export async function readRecord(imagesDir: string, key: string): Promise<{ ok: true; record: CacheRecord } | { ok: false; problem: string }> {
  const fail = (problem: string) => ({ ok: false, problem }) as const
  let record: Partial<CacheRecord> | null
  try {
    record = JSON.parse(await readFile(join(imagesDir, `${key}.json`), 'utf8')) as Partial<CacheRecord> | null
  } catch (error) {
    return fail(error instanceof SyntaxError ? 'the record is not valid JSON' : `the record cannot be read (${(error as NodeJS.ErrnoException).code})`)
  }
  if (typeof record !== 'object' || record === null) return fail('the record is not a JSON object')
  if (record.version !== RECORD_VERSION) return fail(`the record has version ${JSON.stringify(record.version)}, not ${RECORD_VERSION}`)
  if (record.key !== key) return fail('the record names another key than its file name')
  if (typeof record.file !== 'string' || IMAGE_NAME.exec(record.file)?.[1] !== key) {
    return fail(`the record's \`file\` (${JSON.stringify(record.file)}) is not an image of this key`)
  }
  if (typeof record.sha256 !== 'string' || typeof record.size !== 'number') return fail('the record has no `sha256` or `size`')
  return { ok: true, record: record as CacheRecord }
}
