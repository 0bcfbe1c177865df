import { randomBytes } from 'node:crypto'
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs'
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

/** Opens without following a symlink or waiting on a FIFO (a hostile checkout may hold either). */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0)

/**
 * Up to `maxBytes` of `path` when it is a regular file, and its stats (`stats.size` may exceed what was read);
 * undefined when it does not exist. Throws an `Error` whose message says what `path` is instead: a file a checkout
 * left may be a symlink (to `/proc/self/environ`, `/dev/zero`), a FIFO or a folder.
 */
export function readRegularFileSync(path: string, maxBytes: number): { bytes: Buffer; stats: Stats } | undefined {
  let fd: number
  try {
    fd = openSync(path, READ_FLAGS)
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException
    if (code === 'ENOENT') return undefined
    throw new Error(code === 'ELOOP' ? 'it is a symbolic link' : `it cannot be read (${code})`)
  }
  try {
    const stats = fstatSync(fd)
    if (!stats.isFile()) throw new Error('it is not a regular file')
    const bytes = Buffer.alloc(Math.min(stats.size, maxBytes))
    let read = 0
    for (let n = -1; n !== 0 && read < bytes.length; read += n) n = readSync(fd, bytes, read, bytes.length - read, read)
    return { bytes: bytes.subarray(0, read), stats }
  } finally {
    closeSync(fd)
  }
}

/** Whatever JSON files of ours hold is small: a bound for reading them. */
const MAX_JSON_BYTES = 1024 * 1024

/** The JSON in `path`; undefined when it is not a regular file of at most 1 MB that parses (for records, a miss). */
export function readJsonSync(path: string): unknown {
  try {
    const read = readRegularFileSync(path, MAX_JSON_BYTES)
    return read && read.stats.size <= MAX_JSON_BYTES ? JSON.parse(read.bytes.toString('utf8')) : undefined
  } catch {
    return undefined
  }
}
