import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { open, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

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

/** The JSON in `path`; undefined when it cannot be read or parsed (for records, where that is a miss). */
export function readJsonSync(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    return undefined
  }
}
