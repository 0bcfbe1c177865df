import { hostname } from 'node:os'
import { mkdir, open, readFile, rm, stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

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
    try {
      const handle = await open(path, 'wx')
      await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() } satisfies LockOwner))
      await handle.close()
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
    }
    if (await isStale(path, staleMs)) {
      // Two waiters may both find it stale; the exclusive create above decides who gets it.
      await rm(path, { force: true })
      continue
    }
    await sleep(intervalMs, undefined, { signal })
  }
}

async function isStale(path: string, staleMs: number): Promise<boolean> {
  let owner: Partial<LockOwner>
  let touched: number
  try {
    ;[owner, touched] = await Promise.all([
      readFile(path, 'utf8').then((text) => JSON.parse(text) as Partial<LockOwner>, () => ({})),
      stat(path).then((info) => info.mtimeMs),
    ])
  } catch {
    return false // gone already: the next exclusive create will tell
  }
  if (owner.host === hostname() && typeof owner.pid === 'number') return !processAlive(owner.pid)
  return Date.now() - touched > staleMs
}

/** Whether a process of this host is running (EPERM: it is, but someone else's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
