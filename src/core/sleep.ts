import { setTimeout } from 'node:timers/promises'

/**
 * Resolves after `ms`; rejects with `signal.reason` itself (not a wrapping AbortError, as
 * `node:timers/promises` would) as soon as `signal` aborts, so callers see why they stopped.
 */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await setTimeout(Math.max(0, ms), undefined, { signal })
  } catch (error) {
    throw signal?.aborted ? signal.reason : error
  }
}
