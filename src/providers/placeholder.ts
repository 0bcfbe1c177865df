import { createHash } from 'node:crypto'
import { loadSharp } from '../core/image-info'
import type { GenerationJob, GenerationResult, Provider } from './types'

/**
 * Draws a deterministic abstract image from the request's hash: the same request
 * gives the same pixels on every machine (no fonts, no randomness, no network).
 * For trying the plugin without a key, for demos and for tests.
 */
export function createPlaceholderProvider(): Provider {
  return {
    name: 'placeholder',
    async generate(job: GenerationJob): Promise<GenerationResult> {
      job.signal.throwIfAborted()
      const { width, height } = job.request
      const sharp = await loadSharp()
      await sharp(Buffer.from(placeholderSvg(job.request.prompt, job.request.seed, width, height)))
        .png({ compressionLevel: 9 })
        .toFile(job.destination)
      const now = new Date().toISOString()
      return { contentType: 'image/png', createdAt: now, completedAt: now, predictTime: 0 }
    },
  }
}

export function placeholderSvg(prompt: string, seed: number, width: number, height: number): string {
  const bytes = createHash('sha256').update(`${seed}\n${prompt}`).digest()
  const hue = (i: number) => Math.round((bytes[i]! / 255) * 360)
  const [h1, h2, h3] = [hue(0), hue(1), hue(2)]
  const shapes = Array.from({ length: 6 }, (_, i) => {
    const b = (j: number) => bytes[4 + i * 4 + j]! / 255
    const r = Math.round((0.08 + b(2) * 0.25) * Math.min(width, height))
    return `<circle cx="${Math.round(b(0) * width)}" cy="${Math.round(b(1) * height)}" r="${r}" fill="hsl(${(h3 + i * 40) % 360},70%,60%)" fill-opacity="${(0.25 + b(3) * 0.4).toFixed(2)}"/>`
  }).join('')
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">` +
    `<stop offset="0" stop-color="hsl(${h1},65%,45%)"/><stop offset="1" stop-color="hsl(${h2},65%,30%)"/></linearGradient></defs>` +
    `<rect width="100%" height="100%" fill="url(#g)"/>${shapes}</svg>`
  )
}
