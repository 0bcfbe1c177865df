import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs'
import { open } from 'node:fs/promises'

const MB = 1024 * 1024

/** A byte count in whole or tenth mebibytes, as limits are stated: `4 MB`, `1024.5 MB`. */
export const megabytes = (bytes: number): string => `${Number((bytes / MB).toFixed(1))} MB`

/**
 * The bytes of the regular file at `path` (symlinks followed), at most `limit` bytes. The file is opened first,
 * with `O_NONBLOCK` so that opening a FIFO never waits for a writer, and its type and size are checked on the
 * open handle, so nothing can swap the file between the check and the read; at most `limit + 1` bytes are ever
 * read, so a file that grows meanwhile is refused too. Anything else calls `refuse` with why, as a clause that
 * follows the file's name: `is a named pipe (FIFO)`, `is 1024 MB`, `cannot be opened (ENOENT)`; `refuse` throws
 * the caller's own (located) error.
 */
export async function readRegularFile(path: string, limit: number, refuse: (why: string) => never): Promise<Buffer> {
  // O_NONBLOCK is 0 where the platform has none (Windows, which has no FIFOs in the file system either)
  const handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)).catch((error: NodeJS.ErrnoException) =>
    refuse(`cannot be opened (${error.code ?? error.message})`),
  )
  try {
    const info = await handle.stat()
    if (!info.isFile()) refuse(kind(info))
    if (info.size > limit) refuse(`is ${megabytes(info.size)}`)
    const chunks: Buffer[] = []
    let length = 0
    for await (const chunk of handle.createReadStream({ start: 0, end: limit, autoClose: false })) {
      chunks.push(chunk as Buffer)
      length += (chunk as Buffer).length
    }
    if (length > limit) refuse(`grew past ${megabytes(limit)} while it was read`)
    return Buffer.concat(chunks, length)
  } finally {
    await handle.close()
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
    if (!stats.isFile()) throw new Error(`it ${kind(stats)}`)
    const bytes = Buffer.alloc(Math.min(stats.size, maxBytes))
    let read = 0
    for (let n = -1; n !== 0 && read < bytes.length; read += n) n = readSync(fd, bytes, read, bytes.length - read, read)
    return { bytes: bytes.subarray(0, read), stats }
  } finally {
    closeSync(fd)
  }
}

/** What a file that is not a regular one is, as a clause: `is a named pipe (FIFO)`. */
function kind(info: Stats): string {
  if (info.isDirectory()) return 'is a folder'
  if (info.isFIFO()) return 'is a named pipe (FIFO)'
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'is a device'
  if (info.isSocket()) return 'is a socket'
  return 'is not a regular file'
}
