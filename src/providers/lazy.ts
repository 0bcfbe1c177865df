import type { PredictionTiming, Provider } from './types'

/**
 * A provider whose code is loaded on its first use: a build whose images are all cached never loads it (nor what it
 * imports, the HTTP client and the prediction runtime). `name` must be the loaded provider's own: it is part of every key.
 * Timings given to `learn` before then are handed on once it is loaded, before its first `generate`.
 */
export function lazyProvider(name: string, load: () => Promise<Provider>): Provider {
  let loaded: Promise<Provider> | undefined
  const provider = () => (loaded ??= load())
  return {
    name,
    generate: async (job) => (await provider()).generate(job),
    learn(records: Iterable<PredictionTiming>) {
      const timings = [...records]
      // a load that fails is reported by `generate`, which awaits the same promise
      provider().then((real) => real.learn?.(timings), () => undefined)
    },
  }
}
