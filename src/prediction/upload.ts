/**
 * Reference images: uploaded once per content hash, the URL remembered in the cache (the job's
 * memo) and in the provider instance, uploaded again once old or for another service.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { ProviderError } from '../core/errors'
import { sniffImageType, SNIFF_LENGTH } from '../core/sniff'
import type { UploadMemo, UploadRecord } from '../providers/types'
import type { Call, PredictionService } from './service'

/** Sends an upload (retried like a read: an upload is not billed) and gives its URL. */
export type Uploader = (call: Call<string>) => Promise<string>
/** The URL of a reference image's bytes at the service, uploading them unless a fresh upload is known. */
export type ReferenceUploads = (path: string, memo: UploadMemo | undefined, upload: Uploader) => Promise<string>

export function referenceUploads(service: PredictionService, maxAgeMs: number): ReferenceUploads {
  /** By content hash: one upload however many images of a run share the reference. */
  const running = new Map<string, Promise<string>>()
  const known = new Map<string, UploadRecord>()
  const fresh = (record: UploadRecord) => {
    const age = Date.now() - Date.parse(record.uploadedAt)
    return record.service === service.baseURL && age >= 0 && age < maxAgeMs
  }

  const resolve = async (sha256: string, file: Blob, name: string, memo: UploadMemo | undefined, upload: Uploader) => {
    const remembered = known.get(sha256) ?? (await memo?.get(sha256).catch(() => undefined))
    if (remembered && fresh(remembered)) return remembered.url
    if (!service.upload) throw new ProviderError(`${service.title} takes no reference images.`, { hint: "Remove the entry's `image`." })
    const record: UploadRecord = { url: await upload(service.upload(file, name)), uploadedAt: new Date().toISOString(), service: service.baseURL }
    known.set(sha256, record)
    await memo?.set(sha256, record)
    return record.url
  }

  return async (path, memo, upload) => {
    const name = basename(path)
    let bytes: Buffer
    try {
      bytes = await readFile(path)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error)
      throw new ProviderError(`cannot read the reference image ${name} (${code}).`, { hint: "Check the entry's `image` path and run again." })
    }
    // reference.ts refused non-images already; this guards callers that skip it
    const type = sniffImageType(bytes.subarray(0, SNIFF_LENGTH))
    if (!type) throw new ProviderError(`the reference image ${name} is not a PNG, JPEG, WebP or AVIF image; nothing was uploaded.`)
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    let url = running.get(sha256)
    if (!url) {
      url = resolve(sha256, new Blob([new Uint8Array(bytes)], { type }), name, memo, upload)
      running.set(sha256, url)
      // settled uploads leave: the memo answers from now on, and a failure may be tried again
      const settle = () => running.delete(sha256)
      url.then(settle, settle)
    }
    return url
  }
}
