/** Waiting that ends the moment the job is aborted. */

/** Thrown by `withTimeout` when its own timer, not the caller's signal, ended the work. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError'
  constructor(readonly timeoutMs: number) {
    super(`request timed out after ${timeoutMs} ms`)
  }
}

/** Resolves after `ms`; rejects with `signal.reason` as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, Math.max(0, ms))
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Runs `work` with a signal that aborts when `signal` does or after `ms`. Rejects with
 * `signal.reason` when the caller aborted, with RequestTimeoutError when the timer did.
 */
export async function withTimeout<T>(
  signal: AbortSignal,
  ms: number,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  signal.throwIfAborted()
  const controller = new AbortController()
  const onAbort = () => controller.abort(signal.reason)
  signal.addEventListener('abort', onAbort, { once: true })
  const timer = setTimeout(() => controller.abort(new RequestTimeoutError(ms)), ms)
  try {
    return await work(controller.signal)
  } catch (error) {
    if (signal.aborted) throw signal.reason
    if (controller.signal.reason instanceof RequestTimeoutError) throw controller.signal.reason
    throw error
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
  }
}
