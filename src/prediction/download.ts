/**
 * A prediction's output, streamed from a URL or decoded from base64, written to the job's destination only
 * if its first bytes are an image. The key is never sent to output URLs: they live on storage hosts, not the API.
 */
import { createWriteStream } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { ProviderError } from '../core/errors'
import { describeBytes, MAX_IMAGE_BYTES, sniffImageType, SNIFF_LENGTH } from '../core/image-info'
import { formatBytes, loadUndici, readRetryAfter, RequestTimeoutError, seconds, transportError, USER_AGENT, withRetries, withTimeout } from './service'
import type { Attempt, Output, RetryPolicy } from './service'

/** No image of ours comes near this; more means something is wrong, not a bigger picture. */
export const MAX_OUTPUT_BYTES = MAX_IMAGE_BYTES
const AFRESH = 'Nothing was cached; run again to generate it afresh.'

export interface DownloadOptions {
  signal: AbortSignal
  timeoutMs: number
  retry: RetryPolicy
  maxBytes?: number
  predictionId?: string
  unreachableHint: string
  /** Scrubs what the storage sent before a message shows it. */
  redact?: (text: string) => string
  onRateLimited?: (sentAt: number) => void
}

/** The storage no longer has the output (404/410): it expired, and only a new prediction brings it back. */
export class OutputExpiredError extends ProviderError {}
class NotAnImageError extends ProviderError {}

/** Returns the image type read from the bytes; leaves no partial file. */
export async function saveOutput(output: Output, destination: string, options: DownloadOptions): Promise<{ contentType: string }> {
  const maxBytes = options.maxBytes ?? MAX_OUTPUT_BYTES
  try {
    if (output.kind === 'url')
      return await withRetries(() => downloadOnce(output.url, destination, maxBytes, options), { policy: options.retry, signal: options.signal })
    if (Math.floor((output.base64.length * 3) / 4) > maxBytes + 2) throw tooLarge(options.predictionId, maxBytes)
    const bytes = Buffer.from(output.base64, 'base64')
    const type = sniffImageType(bytes.subarray(0, SNIFF_LENGTH))
    if (!type) throw notAnImage(options, bytes.subarray(0, SNIFF_LENGTH), output.kind === 'data-url' ? output.contentType : undefined)
    await writeFile(destination, bytes, { signal: options.signal })
    return { contentType: type }
  } catch (error) {
    await rm(destination, { force: true })
    // tried enough: this output is no image, and fetching it again will not make one
    if (error instanceof NotAnImageError) throw error.with({ retryable: false, predictionOver: true })
    throw error
  }
}

async function downloadOnce(url: string, destination: string, maxBytes: number, options: DownloadOptions): Promise<Attempt<{ contentType: string }>> {
  const { signal, predictionId } = options
  // a storage host's name is the service's string too
  const origin = (options.redact ?? String)(new URL(url).origin)
  const sentAt = performance.now()
  let seen = 0
  try {
    return await withTimeout(signal, options.timeoutMs, async (timed): Promise<Attempt<{ contentType: string }>> => {
      const res = await follow(new URL(url), timed, predictionId, options.redact)
      const status = res.statusCode
      if (status !== 200) {
        await res.body.dump()
        if (status === 429) options.onRateLimited?.(sentAt)
        if (status === 404 || status === 410) {
          const reason = `the output of ${named(predictionId)} is gone from ${origin} (HTTP ${status}): outputs expire about 14 days after their prediction.`
          throw new OutputExpiredError(reason, { hint: 'Run again to generate the image afresh.', predictionId, status })
        }
        const retryable = status === 429 || status >= 500
        // retryable failures keep the journal (the scheduler clears it only on a definite answer)
        const hint = retryable ? 'Run again; the prediction is kept and not paid twice.' : AFRESH
        const error = new ProviderError(`cannot download the output of ${named(predictionId)} from ${origin} (HTTP ${status}).`, { hint, predictionId, status, retryable })
        return { ok: false, error, retryAfterMs: readRetryAfter(res.headers['retry-after'], undefined) }
      }
      if (Number(res.headers['content-length']) > maxBytes) {
        res.body.on('error', () => {}).destroy()
        throw tooLarge(predictionId, maxBytes)
      }
      let head = Buffer.alloc(0)
      await pipeline(
        res.body,
        async function* capped(source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            if ((seen += chunk.length) > maxBytes) throw tooLarge(predictionId, maxBytes)
            if (head.length < SNIFF_LENGTH) head = Buffer.concat([head, chunk]).subarray(0, SNIFF_LENGTH)
            yield chunk
          }
        },
        createWriteStream(destination),
      )
      const type = sniffImageType(head)
      if (type) return { ok: true, value: { contentType: type } }
      const declared = res.headers['content-type']
      // an error page served as 200 may be a passing state of the storage: worth another try
      return { ok: false, error: notAnImage(options, head, Array.isArray(declared) ? declared[0] : declared, true) }
    })
  } catch (error) {
    if (signal.aborted) throw signal.reason
    // file system errors (they name a path) are ours to report as they are, not the network's
    if (error instanceof ProviderError || (error as NodeJS.ErrnoException).path !== undefined) throw error
    const target = `the output storage at ${origin}`
    if (error instanceof RequestTimeoutError && seen > 0) {
      const reason = `${target} did not finish sending the output of ${named(predictionId)} within ${seconds(error.timeoutMs)} (${formatBytes(seen)} arrived).`
      return { ok: false, error: new ProviderError(reason, { hint: 'It is paid for: the next run downloads it again without a new submit.', predictionId, retryable: true }) }
    }
    // a body cut short (reset, or fewer bytes than content-length) lands here too: retried
    return { ok: false, error: transportError(error, target, { action: 'downloading the output', predictionId }, options.unreachableHint) }
  }
}

/**
 * Sends the GET and follows redirects itself (storage links often point at a CDN): only to http(s), at most 5 times.
 * undici's redirect interceptor refuses other schemes too, but with an invalid-argument error that reads as a network
 * fault and is retried.
 */
async function follow(url: URL, signal: AbortSignal, predictionId: string | undefined, redact: (text: string) => string = String) {
  const { request } = await loadUndici()
  for (let redirects = 0; ; redirects++) {
    const res = await request(url, { method: 'GET', headers: { 'user-agent': USER_AGENT }, signal })
    const location = [301, 302, 303, 307, 308].includes(res.statusCode) ? res.headers.location : undefined
    if (typeof location !== 'string') return res
    await res.body.dump()
    const from = `the output storage at ${redact(url.origin)} redirected the download of ${named(predictionId)}`
    const details = { hint: AFRESH, predictionId, status: res.statusCode }
    if (redirects >= 5) throw new ProviderError(`${from} more than 5 times; refusing to follow further.`, details)
    const next = URL.parse(location, url.href)
    if (next?.protocol !== 'http:' && next?.protocol !== 'https:')
      throw new ProviderError(`${from} to ${next ? `a \`${next.protocol}\` URL` : 'an address that is not a URL'}; only http(s) redirects are followed.`, details)
    url = next
  }
}

const named = (predictionId: string | undefined) => (predictionId ? `prediction \`${predictionId}\`` : 'the prediction')

function tooLarge(predictionId: string | undefined, maxBytes: number): ProviderError {
  const reason = `the output of ${named(predictionId)} is larger than ${formatBytes(maxBytes)}; refusing to save it.`
  const hint = "Nothing was cached; check the spec's `width`, `height` and `input`."
  return new ProviderError(reason, { hint, predictionId, predictionOver: true })
}

function notAnImage({ predictionId, redact = (t) => t }: DownloadOptions, head: Uint8Array, declared: string | undefined, retryable = false): ProviderError {
  const said = declared ? `, though it was labelled \`${redact(declared)}\`` : ''
  // scrubbed before describeBytes shortens it, so no part of a secret is left
  const seen = describeBytes(Buffer.from(redact(Buffer.from(head).toString('latin1')), 'latin1'))
  const reason = `the output of ${named(predictionId)} is not a PNG, JPEG, WebP or AVIF image (${seen}${said}).`
  return new NotAnImageError(reason, { hint: AFRESH, predictionId, retryable })
}
