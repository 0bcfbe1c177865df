import { randomUUID } from 'node:crypto'
import * as fs from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { lock as Lock } from 'proper-lockfile'
import { sleep } from './sleep'

let lockModule: Promise<typeof Lock> | undefined
/** proper-lockfile, loaded by the first lock: a build with every image cached takes none. */
const loadLock = () => (lockModule ??= import('proper-lockfile').then((m) => m.lock ?? (m as unknown as { default: { lock: typeof Lock } }).default.lock))

export interface LockOptions {
  signal?: AbortSignal
  /** How often a waiter tries again. @default 1000 */
  intervalMs?: number
  /** Told once, after `waitNoticeMs` (default 3000) of waiting, who holds the lock. */
  onWait?: (holder: string) => void
  waitNoticeMs?: number
}

/**
 * A lock per image key across processes (dev server, CLI, builds on one cache): proper-lockfile's
 * `locks/<key>.lock` directory, whose mtime the holder refreshes (every 15 s). It is
 * stale, and taken over, when that heartbeat is older than 30 s (proper-lockfile's mtime
 * rule, whatever its PID), or at once when its `owner.json` names this host and a dead PID.
 * Release removes the lock only while it is still ours, and never throws.
 */
export async function acquireLock(dir: string, key: string, options: LockOptions = {}): Promise<() => Promise<void>> {
  const { signal, intervalMs = 1000, onWait, waitNoticeMs = 3000 } = options
  const path = join(dir, `${key}.lock`)
  const owner = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString(), id: randomUUID() })
  let held = false
  const notMine = (p: string) => held && readOwner(p).text !== owner
  const lockFs = {
    ...fs,
    // The owner is written into the new directory before proper-lockfile stamps its mtime.
    mkdir: (p: string, cb: (error: Error | null) => void) =>
      fs.mkdir(p, (error) => {
        if (error) return cb(error)
        fs.writeFile(join(p, 'owner.json'), owner, (e) => (e ? fs.rm(p, { recursive: true }, () => cb(e)) : cb(null)))
      }),
    // Before we hold it: a stale lock, removed whole. Once held: ours only (release, exit).
    rmdir: (p: string, cb: (error: Error | null) => void) => (notMine(p) ? cb(null) : fs.rm(p, { recursive: true }, cb)),
    rmdirSync: (p: string) => notMine(p) || fs.rmSync(p, { recursive: true, force: true }),
  }
  await fs.promises.mkdir(dir, { recursive: true })
  let noticeAt = Date.now() + waitNoticeMs
  for (;;) {
    signal?.throwIfAborted()
    try {
      const release = await (await loadLock())(join(dir, key), { lockfilePath: path, realpath: false, stale: 30_000, fs: lockFs, onCompromised: () => {} })
      held = true
      return async () => {
        if (!notMine(path)) await release().catch(() => {})
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error
    }
    const holder = readOwner(path)
    if (holder.host === hostname() && typeof holder.pid === 'number' && !processAlive(holder.pid)) {
      // Moved aside first, so that a lock another waiter took over meanwhile goes back in place.
      const aside = `${path}.${randomUUID()}.stale`
      if (await fs.promises.rename(path, aside).then(() => true, () => false)) {
        if (readOwner(aside).text !== holder.text) await fs.promises.rename(aside, path).catch(() => {})
        await fs.promises.rm(aside, { recursive: true, force: true })
      }
      continue
    }
    if (Date.now() >= noticeAt) {
      noticeAt = Infinity
      onWait?.(typeof holder.pid === 'number' ? `pid ${holder.pid} on host ${holder.host} since ${holder.since}` : 'an unknown process')
    }
    await sleep(intervalMs, signal)
  }
}

/** A lock's owner.json: its text ('' if unreadable) and fields. */
function readOwner(lockPath: string): { text: string; pid?: unknown; host?: unknown; since?: unknown } {
  try {
    const text = fs.readFileSync(join(lockPath, 'owner.json'), 'utf8')
    return { ...(JSON.parse(text) as object), text }
  } catch {
    return { text: '' }
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
