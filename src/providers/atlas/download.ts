/**
 * Writes a prediction's output to the job's destination: streamed from a URL, or decoded
 * from base64. The key is never sent to output URLs: they live on storage hosts, not the API.
 */
import { createWriteStream } from 'node:fs'
import { open, rm, writeFile } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { loadUndici } from './undici'
import { ProviderError } from '../types'
import { RequestTimeoutError, withTimeout } from './abort'
import { formatBytes, seconds, transportError, type ErrorContext } from './errors'
import { USER_AGENT } from './http'
import type { AdaptiveLimiter } from './limiter'
import type { Output } from './protocol'
import { readRetryAfter, withRetries, type Attempt, type RetryPolicy } from './retry'
import { describeBytes, sniffImageType, SNIFF_LENGTH } from '../../core/sniff'

/** No image of ours comes near this; more means something is wrong, not a bigger picture. */
export const MAX_OUTPUT_BYTES = 50 * 1024 * 1024
const MAX_REDIRECTS = 5
const REDIRECTS = new Set([301, 302, 303, 307, 308])
const AFRESH = 'Nothing was cached; run again to generate it afresh.'

export interface SaveOptions {
  signal: AbortSignal
  requestTimeoutMs: number
  retry: RetryPolicy
  maxBytes?: number
  ctx: ErrorContext
  /** Told about 429s from the storage host, so the provider sends less at once. */
  limiter?: AdaptiveLimiter
}

/** The storage no longer has the output (404/410): it expired, and only a new prediction brings it back. */
export class OutputExpiredError extends ProviderError {}

/** The bytes are not an image, whatever their label said. */
class NotAnImageError extends ProviderError {}

/**
 * Saves `output` to `destination`, checking that the bytes are an image; on failure no
 * partial file is left behind. Returns the image type read from the bytes.
 */
export async function saveOutput(output: Output, destination: string, options: SaveOptions): Promise<{ contentType: string }> {
  try {
    if (output.kind === 'url') {
      return await withRetries(() => downloadOnce(output.url, destination, options), { policy: options.retry, signal: options.signal })
    }
    const maxBytes = options.maxBytes ?? MAX_OUTPUT_BYTES
    if (Math.floor(output.base64.length * 3 / 4) > maxBytes + 2) throw tooLarge(options.ctx, maxBytes)
    const bytes = Buffer.from(output.base64, 'base64')
    const type = sniffImageType(bytes.subarray(0, SNIFF_LENGTH))
    if (!type) throw notAnImage(options.ctx, bytes.subarray(0, SNIFF_LENGTH), output.kind === 'data-url' ? output.contentType : undefined, false)
    await writeFile(destination, bytes, { signal: options.signal })
    return { contentType: type }
  } catch (error) {
    await rm(destination, { force: true })
    // tried enough: this prediction's output is no image, and fetching it again will not make one
    if (error instanceof NotAnImageError && error.details.retryable) throw new NotAnImageError(error.message, { ...error.details, retryable: false, predictionOver: true })
    throw error
  }
}

async function downloadOnce(url: string, destination: string, options: SaveOptions): Promise<Attempt<{ contentType: string }>> {
  const { signal, ctx, limiter } = options
  const maxBytes = options.maxBytes ?? MAX_OUTPUT_BYTES
  const origin = new URL(url).origin
  const target = `the output storage at ${origin}`
  const mark = limiter?.mark()
  let seen = 0
  try {
    return await withTimeout(signal, options.requestTimeoutMs, async timed => {
      const res = await follow(new URL(url), timed, ctx)
      if (res.statusCode !== 200) {
        await res.body.dump()
        const status = res.statusCode
        if (status === 429 && mark !== undefined) limiter?.rateLimited(mark)
        if (status === 404 || status === 410) {
          throw new OutputExpiredError(
            `[imagegen] the output of ${describe(ctx)} is gone from ${origin} (HTTP ${status}): outputs expire about 14 days after their prediction. Run again to generate the image afresh.`,
            { predictionId: ctx.predictionId, status, retryable: false },
          )
        }
        const retryable = status === 429 || status >= 500
        // retryable failures keep the journal (the scheduler clears it only on a definite answer)
        const error = new ProviderError(
          `[imagegen] cannot download the output of ${describe(ctx)} from ${origin} (HTTP ${status}). ${retryable ? 'Run again; the prediction is kept and not paid twice.' : AFRESH}`,
          { predictionId: ctx.predictionId, status, retryable },
        )
        return { ok: false, error, retryAfterMs: readRetryAfter(res.headers['retry-after'], undefined) } as const
      }
      const length = Number(res.headers['content-length'])
      if (Number.isFinite(length) && length > maxBytes) {
        // destroy, not dump: reading 50 MB to throw it away is what the cap is there to avoid
        res.body.on('error', () => {}).destroy()
        throw tooLarge(ctx, maxBytes)
      }
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
      const head = await readHead(destination)
      const type = sniffImageType(head)
      if (!type) {
        const declared = res.headers['content-type']
        // an error page served as 200 may be a passing state of the storage: worth another try
        return { ok: false, error: notAnImage(ctx, head, Array.isArray(declared) ? declared[0] : declared, true) } as const
      }
      return { ok: true, value: { contentType: type } } as const
    })
  } catch (error) {
    if (signal.aborted) throw signal.reason
    if (error instanceof ProviderError) throw error
    // file system errors (they name a path) are ours to report as they are, not the network's
    if ((error as NodeJS.ErrnoException).path !== undefined) throw error
    if (error instanceof RequestTimeoutError && seen > 0) {
      return {
        ok: false,
        error: new ProviderError(
          `[imagegen] ${target} did not finish sending the output of ${describe(ctx)} within ${seconds(error.timeoutMs)} (${formatBytes(seen)} arrived). ` +
            'It is paid for: the next run downloads it again without a new submit.',
          { predictionId: ctx.predictionId, retryable: true },
        ),
      }
    }
    // a body cut short (reset, or fewer bytes than content-length) lands here too: retried
    return { ok: false, error: transportError(error, target, ctx) }
  }
}

/**
 * Sends the GET and follows redirects itself (storage links often point at a CDN): only to
 * http(s), at most MAX_REDIRECTS. undici's redirect interceptor refuses other schemes too,
 * but with an invalid-argument error that reads as a network fault and is retried.
 */
async function follow(url: URL, signal: AbortSignal, ctx: ErrorContext) {
  for (let redirects = 0; ; redirects++) {
    const { request } = await loadUndici()
    const res = await request(url, { method: 'GET', headers: { 'user-agent': USER_AGENT }, signal })
    const location = REDIRECTS.has(res.statusCode) ? res.headers.location : undefined
    if (typeof location !== 'string') return res
    await res.body.dump()
    const from = `the output storage at ${url.origin} redirected the download of ${describe(ctx)}`
    const details = { predictionId: ctx.predictionId, status: res.statusCode, retryable: false }
    if (redirects >= MAX_REDIRECTS)
      throw new ProviderError(`[imagegen] ${from} more than ${MAX_REDIRECTS} times; refusing to follow further. ${AFRESH}`, details)
    let next: URL | undefined
    try {
      next = new URL(location, url)
    } catch {}
    if (next?.protocol !== 'http:' && next?.protocol !== 'https:') {
      const what = next ? `a \`${next.protocol}\` URL` : 'an address that is not a URL'
      throw new ProviderError(`[imagegen] ${from} to ${what}; only http(s) redirects are followed. ${AFRESH}`, details)
    }
    url = next
  }
}

async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r')
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SNIFF_LENGTH), 0, SNIFF_LENGTH, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

function describe(ctx: ErrorContext): string {
  return ctx.predictionId ? `prediction \`${ctx.predictionId}\`` : 'the prediction'
}

function tooLarge(ctx: ErrorContext, maxBytes: number): ProviderError {
  return new ProviderError(
    `[imagegen] the output of ${describe(ctx)} is larger than ${formatBytes(maxBytes)}; refusing to save it. Nothing was cached; check the spec's \`width\`, \`height\` and \`input\`.`,
    { predictionId: ctx.predictionId, retryable: false, predictionOver: true },
  )
}

function notAnImage(ctx: ErrorContext, head: Uint8Array, declared: string | undefined, retryable: boolean): ProviderError {
  const said = declared ? `, though it was labelled \`${declared}\`` : ''
  return new NotAnImageError(
    `[imagegen] the output of ${describe(ctx)} is not a PNG, JPEG, WebP or AVIF image (${describeBytes(head)}${said}). ${AFRESH}`,
    { predictionId: ctx.predictionId, retryable },
  )
}
