import { createHash } from 'node:crypto'
import { createReadStream, existsSync, lstatSync, mkdirSync, type Stats } from 'node:fs'
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { commitFile, readJsonSync, tempPathFor, writeFileAtomic, writeFileAtomicSync } from './atomic'
import { readRegularFileSync } from './read-file'
import { ImagegenError } from './errors'
import { EXTENSIONS, MAX_IMAGE_BYTES, type ImageInfo } from './image-info'
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

/**
 * What the memo (in the derived cache, on this machine only) knows of one entry: its record as read and checked, and
 * the fingerprints of the record file and of the image, hashed to the recorded SHA-256, at the time.
 */
type Verified = { fingerprint: string; record: CacheRecord }

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

/**
 * A cache entry whose record is there but cannot be trusted, or whose image is not the one it records (an LFS
 * pointer, a truncated or rewritten file, a symlink): never regenerated on its own (PRODUCT.md, "Never").
 */
export class DamagedEntryError extends ImagegenError {
  override name = 'DamagedEntryError'
  constructor(
    readonly key: string,
    /** Absolute path of the damaged file (the image, or the record). */
    readonly path: string,
    readonly problem: string,
    readonly lfsPointer = false,
  ) {
    super('IO', `the cache entry ${path} is damaged: ${problem}.`, { id: path })
  }
}

/** What Git LFS leaves in place of a file after a checkout without `git lfs pull`. */
const LFS_POINTER = 'version https://git-lfs.github.com/spec/v1'
const MAX_RECORD_BYTES = 64 * 1024
/** The memo of verified images: about 200 bytes an image, so a million images. */
const MAX_MEMO_BYTES = 256 * 1024 * 1024
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
  /** Verified entries by key; read from `memoPath` once, on first use. */
  private verified?: Record<string, Verified>
  private saving = false

  /** `memoPath`: a JSON file (in the derived cache, never committed) that remembers verified images across runs. */
  constructor(
    readonly dir: string,
    private readonly memoPath?: string,
  ) {
    this.imagesDir = join(dir, 'images')
    this.locksDir = join(dir, 'locks')
  }

  /**
   * The entry of `key`, undefined when it has no record. An entry is taken only if its record is a valid record of
   * this key and its image a regular file (not a symlink) in `images/`, named `<key>.<ext>`, of the recorded size
   * and SHA-256; anything else throws a `DamagedEntryError`. The record is read and the image hashed when either
   * file is new to this machine's memo of verified entries (by inode, size, mtime and ctime), or always with
   * `rehash`; else the memo's copy of the record is taken (two `lstat`s, no read).
   * Synchronous: a record is a few hundred bytes, and thousands of small reads in flight through the thread pool
   * cost several times what reading them in turn does. No image is decoded.
   */
  lookup(key: string, { rehash = false } = {}): CachedImage | undefined {
    const known = rehash ? undefined : this.memo()[key]
    if (typeof known?.record?.file === 'string') {
      const path = join(this.imagesDir, known.record.file)
      const recordStats = lstatSync(this.recordPath(key), { throwIfNoEntry: false })
      const stats = recordStats && lstatSync(path, { throwIfNoEntry: false })
      if (stats && known.fingerprint === `${ImageCache.fingerprint(recordStats)} ${ImageCache.fingerprint(stats)}`) return { record: known.record, path }
    }
    const read = readRecord(this.imagesDir, key)
    if (!read) return undefined
    if (!read.ok) throw new DamagedEntryError(key, this.recordPath(key), read.problem)
    const { record } = read
    const path = join(this.imagesDir, record.file)
    const damaged = (problem: string, lfs = false) => new DamagedEntryError(key, path, problem, lfs)
    const stats = lstatSync(path, { throwIfNoEntry: false })
    if (!stats) throw damaged('its record is there but the image file is missing')
    if (stats.isSymbolicLink()) throw damaged('the image is a symbolic link, not a file')
    if (!stats.isFile()) throw damaged('the image is not a regular file')
    if (stats.size !== record.size) {
      if (readRegularFileSync(path, LFS_POINTER.length)?.bytes.toString('latin1') === LFS_POINTER) throw damaged('the image is a Git LFS pointer, not the image (the checkout ran without `git lfs pull`)', true)
      throw damaged(`the image has ${stats.size} bytes, its record says ${record.size} (truncated, or rewritten by a line-ending conversion)`)
    }
    let sha256: string
    try {
      sha256 = createHash('sha256').update(readRegularFileSync(path, MAX_IMAGE_BYTES)?.bytes ?? '').digest('hex')
    } catch (error) {
      throw damaged((error as Error).message)
    }
    if (sha256 !== record.sha256) throw damaged(`SHA-256 ${sha256.slice(0, 12)}… differs from the recorded ${record.sha256.slice(0, 12)}…`)
    this.remember(record, read.stats, stats)
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
    // Not remembered here: a memo written after each of a run's commits would be written n times. The next lookup
    // hashes the image once and remembers the whole burst in one write.
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

  /** Best effort: a journal entry that cannot be removed is harmless once the image is cached (it is never resumed then). */
  async clearPending(key: string): Promise<void> {
    await rm(this.pendingPath(key), { force: true }).catch(() => {})
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

  /** What makes a file new to this machine: another inode, size or time (ctime cannot be set back). */
  private static fingerprint(stats: Stats): string {
    return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`
  }

  /** The memo of verified entries, read once per instance: one read per build, not one per lookup. */
  private memo(): Record<string, Verified> {
    if (!this.verified) {
      // 10,000 images make a memo of about 2 MB: more than `readJsonSync` reads by default
      const saved = this.memoPath && readJsonSync(this.memoPath, MAX_MEMO_BYTES)
      // Keys are image keys (64 hex digits): never a name an object inherits; anything else found there is a miss.
      this.verified = saved && typeof saved === 'object' && !Array.isArray(saved) ? (saved as Record<string, Verified>) : {}
    }
    return this.verified
  }

  /**
   * Notes a verified entry: its record, read and checked, and its image, hashed. The memo is written once after a burst of lookups, synchronously so that a command that
   * exits right after its plan does not leave it half written (and every image to hash again); best effort: a lost
   * memo only costs a hash.
   */
  private remember(record: CacheRecord, recordStats: Stats, imageStats: Stats): void {
    this.memo()[record.key] = { fingerprint: `${ImageCache.fingerprint(recordStats)} ${ImageCache.fingerprint(imageStats)}`, record }
    const memoPath = this.memoPath
    if (!memoPath || this.saving) return
    this.saving = true
    queueMicrotask(() => {
      this.saving = false
      try {
        mkdirSync(dirname(memoPath), { recursive: true })
        writeFileAtomicSync(memoPath, JSON.stringify(this.verified))
      } catch {}
    })
  }

  /**
   * Makes the folders, and proves the journal can be written before anything is submitted: a prediction whose id
   * cannot be journaled would be paid for and lost to the next run. Throws an `ImagegenError` naming the folder.
   */
  prepare(): Promise<void> {
    this.prepared ??= (async () => {
      const pendingDir = join(this.dir, 'pending')
      await mkdir(this.imagesDir, { recursive: true })
      try {
        await mkdir(pendingDir, { recursive: true })
        const probe = tempPathFor(join(pendingDir, 'probe'))
        await writeFile(probe, '')
        await rm(probe)
      } catch (error) {
        const reason = `cannot write the journal of submitted predictions in ${pendingDir} (${(error as NodeJS.ErrnoException).code ?? error}); nothing was submitted.`
        throw new ImagegenError('IO', reason, { hint: 'Make it a writable folder (remove what is in its place) and run again.', cause: error })
      }
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

async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
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

/**
 * Reads a record (a regular file of a few KB) and checks that it belongs to its key and names an image of that key:
 * undefined when there is none, else the record or what is wrong with it.
 */
export function readRecord(imagesDir: string, key: string): { ok: true; record: CacheRecord; stats: Stats } | { ok: false; problem: string } | undefined {
  const fail = (problem: string) => ({ ok: false, problem }) as const
  let record: Partial<CacheRecord> | null
  let stats: Stats
  try {
    const read = readRegularFileSync(join(imagesDir, `${key}.json`), MAX_RECORD_BYTES)
    if (!read) return undefined
    stats = read.stats
    if (stats.size > MAX_RECORD_BYTES) return fail(`the record is larger than ${MAX_RECORD_BYTES / 1024} KB`)
    record = JSON.parse(read.bytes.toString('utf8')) as Partial<CacheRecord> | null
  } catch (error) {
    return fail(error instanceof SyntaxError ? 'the record is not valid JSON' : `the record cannot be read: ${(error as Error).message}`)
  }
  if (typeof record !== 'object' || record === null) return fail('the record is not a JSON object')
  if (record.version !== RECORD_VERSION) return fail(`the record has version ${JSON.stringify(record.version)}, not ${RECORD_VERSION}`)
  if (record.key !== key) return fail('the record names another key than its file name')
  const format = record.format && Object.hasOwn(EXTENSIONS, record.format) ? record.format : undefined
  if (typeof record.file !== 'string' || !format || record.file !== `${key}.${EXTENSIONS[format]}`) {
    return fail(`the record's \`file\` (${JSON.stringify(record.file)}) is not an image of this key and format`)
  }
  const { sha256, size } = record
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256) || !Number.isInteger(size) || size! <= 0 || size! > MAX_IMAGE_BYTES) {
    return fail('the record has no valid `sha256` or `size`')
  }
  return { ok: true, record: record as CacheRecord, stats }
}
