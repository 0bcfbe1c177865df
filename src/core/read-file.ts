import { constants, type Stats } from 'node:fs'
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
    if (!info.isFile()) refuse(`is ${kind(info)}`)
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

function kind(info: Stats): string {
  if (info.isDirectory()) return 'a folder'
  if (info.isFIFO()) return 'a named pipe (FIFO)'
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device'
  if (info.isSocket()) return 'a socket'
  return 'not a regular file'
}
