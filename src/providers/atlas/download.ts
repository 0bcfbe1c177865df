/**
 * Writes a prediction's output to the job's destination: streamed from a URL, or decoded
 * from base64. The key is never sent to output URLs: they live on storage hosts, not the API.
 */
import { createWriteStream } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { getGlobalDispatcher, interceptors, request } from 'undici'
import { ProviderError } from '../types'
import { withTimeout } from './abort'
import { transportError, type ErrorContext } from './errors'
import { USER_AGENT } from './http'
import type { Output } from './protocol'
import { readRetryAfter, withRetries, type Attempt, type RetryPolicy } from './retry'

/** No image of ours comes near this; more means something is wrong, not a bigger picture. */
export const MAX_OUTPUT_BYTES = 50 * 1024 * 1024
const MAX_REDIRECTS = 5

export interface SaveOptions {
  signal: AbortSignal
  requestTimeoutMs: number
  retry: RetryPolicy
  maxBytes?: number
  ctx: ErrorContext
}

/** Saves `output` to `destination`; on failure no partial file is left behind. */
export async function saveOutput(output: Output, destination: string, options: SaveOptions): Promise<{ contentType?: string }> {
  try {
    if (output.kind === 'url') {
      return await withRetries(() => downloadOnce(output.url, destination, options), { policy: options.retry, signal: options.signal })
    }
    const maxBytes = options.maxBytes ?? MAX_OUTPUT_BYTES
    if (Math.floor(output.base64.length * 3 / 4) > maxBytes + 2) throw tooLarge(options.ctx, maxBytes)
    await writeFile(destination, Buffer.from(output.base64, 'base64'), { signal: options.signal })
    return { contentType: output.kind === 'data-url' ? output.contentType : undefined }
  } catch (error) {
    await rm(destination, { force: true })
    throw error
  }
}

async function downloadOnce(url: string, destination: string, options: SaveOptions): Promise<Attempt<{ contentType?: string }>> {
  const { signal, ctx } = options
  const maxBytes = options.maxBytes ?? MAX_OUTPUT_BYTES
  const origin = new URL(url).origin
  const target = `the output storage at ${origin}`
  try {
    return await withTimeout(signal, options.requestTimeoutMs, async timed => {
      const res = await request(url, {
        method: 'GET',
        headers: { 'user-agent': USER_AGENT },
        signal: timed,
        // storage links often redirect to a CDN
        dispatcher: getGlobalDispatcher().compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS })),
      })
      if (res.statusCode !== 200) {
        await res.body.dump()
        const status = res.statusCode
        const gone = status === 404 || status === 410 ? ' Outputs expire about 14 days after their prediction.' : ''
        const error = new ProviderError(
          `[imagegen] cannot download the output of ${describe(ctx)} from ${origin} (HTTP ${status}).${gone}`,
          { predictionId: ctx.predictionId, status, retryable: status === 429 || status >= 500 },
        )
        return { ok: false, error, retryAfterMs: readRetryAfter(res.headers['retry-after'], undefined) } as const
      }
      const length = Number(res.headers['content-length'])
      if (Number.isFinite(length) && length > maxBytes) {
        await res.body.dump()
        throw tooLarge(ctx, maxBytes)
      }
      let seen = 0
      await pipeline(
        res.body,
        async function* capped(source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            seen += chunk.length
            if (seen > maxBytes) throw tooLarge(ctx, maxBytes)
            yield chunk
          }
        },
        createWriteStream(destination),
      )
      const type = res.headers['content-type']
      return { ok: true, value: { contentType: Array.isArray(type) ? type[0] : type } } as const
    })
  } catch (error) {
    if (signal.aborted) throw signal.reason
    if (error instanceof ProviderError) throw error
    // file system errors (they name a path) are ours to report as they are, not the network's
    if ((error as NodeJS.ErrnoException).path !== undefined) throw error
    return { ok: false, error: transportError(error, target, ctx) }
  }
}

function describe(ctx: ErrorContext): string {
  return ctx.predictionId ? `prediction \`${ctx.predictionId}\`` : 'the prediction'
}

function tooLarge(ctx: ErrorContext, maxBytes: number): ProviderError {
  return new ProviderError(
    `[imagegen] the output of ${describe(ctx)} is larger than ${Math.round(maxBytes / 1024 / 1024)} MB; refusing to save it.`,
    { predictionId: ctx.predictionId, retryable: false },
  )
}
