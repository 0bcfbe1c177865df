import { randomBytes } from 'node:crypto'
import { open, rename, rm, writeFile } from 'node:fs/promises'
import { renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { readRegularFileSync } from './read-file'

/** A temp name beside `path` (same folder, so the final rename is atomic). Matches `*.tmp`. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
}

/** Flushes a finished temp file and gives it its real name in one step. */
export async function commitFile(temp: string, path: string): Promise<void> {
  const handle = await open(temp, 'r+')
  await handle.sync().finally(() => handle.close())
  await rename(temp, path)
}

/**
 * `writeFileAtomic` done synchronously and without the flush, for data that may be lost but never half written (a
 * memo written as a process exits). Throws as `writeFileSync` does, leaving no temp file.
 */
export function writeFileAtomicSync(path: string, data: string): void {
  const temp = tempPathFor(path)
  try {
    writeFileSync(temp, data, { flag: 'wx' })
    renameSync(temp, path)
  } catch (error) {
    rmSync(temp, { force: true })
    throw error
  }
}

/** Writes `data` so that `path` holds either its old content or all of the new, never a part. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = tempPathFor(path)
  try {
    await writeFile(temp, data, { flag: 'wx' })
    await commitFile(temp, path)
  } catch (error) {
    await rm(temp, { force: true })
    throw error
  }
}

/** Whatever JSON files of ours hold is small: a bound for reading them. */
const MAX_JSON_BYTES = 1024 * 1024

/** The JSON in `path`; undefined when it is not a regular file of at most `maxBytes` (default 1 MB) that parses (for records, a miss). */
export function readJsonSync(path: string, maxBytes = MAX_JSON_BYTES): unknown {
  try {
    const read = readRegularFileSync(path, maxBytes)
    return read && read.stats.size <= maxBytes ? JSON.parse(read.bytes.toString('utf8')) : undefined
  } catch {
    return undefined
  }
}
