/**
 * How many predictions one provider instance keeps in flight, adapted to what the service
 * says (AIMD, as TCP does): every 429 halves the limit, every prediction that completes
 * raises it by one. The scheduler's `concurrency` stays the ceiling; this only goes below it
 * while the service is pushing back, and grows back once it stops.
 */

export interface Slot {
  /** Gives the place back; a second call does nothing. */
  release(): void
}

export class AdaptiveLimiter {
  /** Infinity until the first 429: until then the scheduler's own limit is the only one. */
  private limit = Number.POSITIVE_INFINITY
  private active = 0
  /**
   * Bumped at each decrease. A 429 answering a request sent before the last decrease is
   * news already acted on: a burst of them, sent together, halves the limit once, not n times.
   */
  private epoch = 0
  private readonly waiters: Array<() => void> = []

  /** The current limit (Infinity while nothing has pushed back). */
  get current(): number {
    return this.limit
  }

  /** Waits for a place in flight; rejects with `signal.reason` the moment `signal` aborts. */
  acquire(signal: AbortSignal): Promise<Slot> {
    if (signal.aborted) return Promise.reject(signal.reason)
    if (this.active < this.limit && this.waiters.length === 0) return Promise.resolve(this.take())
    return new Promise<Slot>((resolve, reject) => {
      const waiter = () => {
        signal.removeEventListener('abort', onAbort)
        resolve(this.take())
      }
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter)
        if (index >= 0) this.waiters.splice(index, 1)
        reject(signal.reason)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.push(waiter)
    })
  }

  /** Call before sending a request; hand the value to `rateLimited` if the answer is a 429. */
  mark(): number {
    return this.epoch
  }

  /** The service answered 429 to a request sent at `mark`. */
  rateLimited(mark: number): void {
    if (mark !== this.epoch) return
    this.limit = Math.max(1, Math.floor(Math.min(this.limit, Math.max(this.active, 1)) / 2))
    this.epoch++
  }

  /** A prediction completed: one more may run at once. */
  succeeded(): void {
    if (Number.isFinite(this.limit)) this.limit++
    this.drain()
  }

  private take(): Slot {
    this.active++
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.active--
        this.drain()
      },
    }
  }

  private drain(): void {
    while (this.waiters.length > 0 && this.active < this.limit) this.waiters.shift()!()
  }
}
