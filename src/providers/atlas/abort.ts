/** A request that ends the moment the job is aborted, or when its own timer runs out. */

/** Thrown by `withTimeout` when its own timer, not the caller's signal, ended the work. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError'
  constructor(readonly timeoutMs: number) {
    super(`request timed out after ${timeoutMs} ms`)
  }
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
