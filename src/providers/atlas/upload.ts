/**
 * Reference images: uploaded with `uploadMedia` once per content hash, the URL remembered in
 * the cache (through the job's memo) and in this provider instance, uploaded again once old.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { loadUndici } from './undici'
import { ProviderError, type UploadMemo, type UploadRecord } from '../types'
import type { ErrorContext } from './errors'
import { callApi, type ApiClient } from './http'
import type { AdaptiveLimiter } from './limiter'
import { readUploadURL, UPLOAD_PATH } from './protocol'
import { withRetries, type RetryPolicy } from './retry'
import { sniffImageType, SNIFF_LENGTH } from '../../core/sniff'

export interface UploadSettings {
  retry: RetryPolicy
  /** An uploaded URL older than this is not trusted to still work. */
  maxAgeMs: number
}

export class ReferenceUploads {
  /** By content hash: one upload however many images of a run share the reference. */
  private readonly running = new Map<string, Promise<string>>()
  private readonly known = new Map<string, UploadRecord>()

  constructor(
    private readonly client: ApiClient,
    private readonly settings: UploadSettings,
    private readonly limiter: AdaptiveLimiter,
  ) {}

  /** The URL of `path`'s bytes on the service, uploading them unless a fresh upload is known. */
  async urlFor(path: string, memo: UploadMemo | undefined, signal: AbortSignal): Promise<string> {
    let bytes: Buffer
    try {
      bytes = await readFile(path)
    } catch (error) {
      throw new ProviderError(`[imagegen] cannot read the reference image ${basename(path)} (${(error as NodeJS.ErrnoException).code ?? error}); check the entry's \`image\` path and run again.`, { retryable: false })
    }
    // reference.ts refused non-images already; this guards callers that skip it
    const type = sniffImageType(bytes.subarray(0, SNIFF_LENGTH))
    if (!type) throw new ProviderError(`[imagegen] the reference image ${basename(path)} is not a PNG, JPEG, WebP or AVIF image; nothing was uploaded.`, { retryable: false })
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    let url = this.running.get(sha256)
    if (!url) {
      url = this.resolve(sha256, bytes, type, basename(path), memo, signal)
      this.running.set(sha256, url)
      // settled uploads leave: the memo answers from now on, and a failure may be tried again
      url.then(() => this.running.delete(sha256), () => this.running.delete(sha256))
    }
    return url
  }

  private async resolve(sha256: string, bytes: Buffer, type: string, name: string, memo: UploadMemo | undefined, signal: AbortSignal): Promise<string> {
    const remembered = this.known.get(sha256) ?? (await memo?.get(sha256).catch(() => undefined))
    if (remembered && this.fresh(remembered)) return remembered.url

    const ctx: ErrorContext = { action: `uploading the reference image ${name}` }
    const { FormData } = await loadUndici()
    const form = new FormData()
    form.set('file', new Blob([new Uint8Array(bytes)], { type }), name)
    // An upload is not billed and stores the same bytes again at worst, so unlike a submit
    // it is retried like a read.
    const answer = await withRetries(
      async () => {
        const mark = this.limiter.mark()
        const result = await callApi(this.client, { method: 'POST', path: UPLOAD_PATH, form }, signal, ctx)
        if (!result.ok && result.error.details.status === 429) this.limiter.rateLimited(mark)
        return result
      },
      { policy: this.settings.retry, signal },
    )
    const url = readUploadURL(answer.payload, answer.body)
    if (!url) throw new ProviderError(`[imagegen] Atlas Cloud accepted the reference image ${name} but its answer has no \`download_url\`. Run again; if it persists, the upload API has changed.`)
    const record: UploadRecord = { url, uploadedAt: new Date().toISOString(), service: this.client.baseURL }
    this.known.set(sha256, record)
    await memo?.set(sha256, record)
    return url
  }

  private fresh(record: UploadRecord): boolean {
    const age = Date.now() - Date.parse(record.uploadedAt)
    return record.service === this.client.baseURL && Number.isFinite(age) && age >= 0 && age < this.settings.maxAgeMs
  }
}
