import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RECORD_VERSION, type CacheRecord } from './cache'
import { EXTENSIONS } from './image-info'

const RECORD_NAME = /^([0-9a-f]{64})\.json$/
const IMAGE_NAME = new RegExp(`^([0-9a-f]{64})\\.(${Object.values(EXTENSIONS).join('|')})$`)

/** The committed files of the cache's images folder, by key. Temp files and anything else are left out. */
export interface CacheListing {
  /** Keys that have a record file. */
  records: string[]
  /** Image file names by key (normally one per key). */
  images: Map<string, string[]>
}

/** Lists the images folder; undefined when it does not exist. */
export async function listCache(imagesDir: string): Promise<CacheListing | undefined> {
  let names: string[]
  try {
    names = await readdir(imagesDir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
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

export type RecordRead = { ok: true; record: CacheRecord } | { ok: false; problem: string }

/** Reads a record and checks that it belongs to its key and names a file of that key. */
export async function readRecord(imagesDir: string, key: string): Promise<RecordRead> {
  let data: unknown
  try {
    data = JSON.parse(await readFile(join(imagesDir, `${key}.json`), 'utf8'))
  } catch (error) {
    return { ok: false, problem: error instanceof SyntaxError ? 'the record is not valid JSON' : `the record cannot be read (${(error as NodeJS.ErrnoException).code})` }
  }
  const record = data as Partial<CacheRecord> | null
  if (typeof record !== 'object' || record === null) return { ok: false, problem: 'the record is not a JSON object' }
  if (record.version !== RECORD_VERSION) return { ok: false, problem: `the record has version ${JSON.stringify(record.version)}, not ${RECORD_VERSION}` }
  if (record.key !== key) return { ok: false, problem: 'the record names another key than its file name' }
  if (typeof record.file !== 'string' || IMAGE_NAME.exec(record.file)?.[1] !== key) {
    return { ok: false, problem: `the record's \`file\` (${JSON.stringify(record.file)}) is not an image of this key` }
  }
  if (typeof record.sha256 !== 'string' || typeof record.size !== 'number') return { ok: false, problem: 'the record has no `sha256` or `size`' }
  return { ok: true, record: record as CacheRecord }
}
