import { hostname } from 'node:os'
import { link, mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempPathFor } from './atomic'
import { sleep } from './sleep'

interface LockOwner {
  pid: number
  host: string
  since: string
}

export interface LockOptions {
  signal?: AbortSignal
  /** How often a held lock's file is touched, and a waiter looks again. @default 1000 */
  intervalMs?: number
  /** A lock of another host untouched for this long is stale. @default 30000 */
  staleMs?: number
}

/**
 * A lock per image key across processes (a dev server and a CLI `generate`, two builds):
 * `locks/<key>.lock`, created exclusively. A lock whose owner died is taken over — on this
 * host when its process is gone, elsewhere when it has not been touched for `staleMs`.
 * Resolves with the release function once the lock is held.
 */
export async function acquireLock(dir: string, key: string, options: LockOptions = {}): Promise<() => Promise<void>> {
  const { signal, intervalMs = 1000, staleMs = 30_000 } = options
  const path = join(dir, `${key}.lock`)
  await mkdir(dir, { recursive: true })
  for (;;) {
    signal?.throwIfAborted()
    // The owner is written to a temp file first and linked into place: `link` fails if the
    // lock exists, and a lock is never seen empty, even if this process dies half way.
    const temp = tempPathFor(path)
    await writeFile(temp, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() } satisfies LockOwner))
    try {
      await link(temp, path)
      const heartbeat = setInterval(() => {
        const now = new Date()
        utimes(path, now, now).catch(() => {})
      }, intervalMs)
      heartbeat.unref()
      return async () => {
        clearInterval(heartbeat)
        await rm(path, { force: true })
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    } finally {
      await rm(temp, { force: true })
    }
    const stale = await staleOwner(path, staleMs)
    if (stale !== undefined) {
      // Move it aside, then check that what moved is the lock judged stale: another waiter
      // may have taken the lock over in between, and its fresh lock goes back in place.
      const moved = tempPathFor(path)
      if (await rename(path, moved).then(() => true, () => false)) {
        if ((await readFile(moved, 'utf8').catch(() => '')) !== stale) await link(moved, path).catch(() => {})
        await rm(moved, { force: true })
      }
      continue
    }
    await sleep(intervalMs, signal)
  }
}

/** The lock's text when its owner is gone, else undefined. */
async function staleOwner(path: string, staleMs: number): Promise<string | undefined> {
  let text: string
  let touched: number
  try {
    ;[text, touched] = await Promise.all([readFile(path, 'utf8'), stat(path).then((info) => info.mtimeMs)])
  } catch {
    return undefined // gone already: the next exclusive create will tell
  }
  let owner: Partial<LockOwner> = {}
  try {
    owner = JSON.parse(text) as Partial<LockOwner>
  } catch {
    // unreadable: judged by its age alone
  }
  const gone = owner.host === hostname() && typeof owner.pid === 'number' ? !processAlive(owner.pid) : Date.now() - touched > staleMs
  return gone ? text : undefined
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
