import { readFile } from 'node:fs/promises'
import type { CachedImage } from './core/cache'
import { Code } from './core/module-code'

interface RollupLikeContext {
  emitFile(file: { type: 'asset'; name: string; source: Uint8Array }): string
}

/**
 * Emits a cached image as a build asset through Rollup's (and Vite's) `emitFile`,
 * whose file URL goes through the bundler's own public path (`base`).
 */
export async function emitAsset(context: unknown, image: CachedImage): Promise<Code> {
  const ref = (context as RollupLikeContext).emitFile({
    type: 'asset',
    name: `imagegen-${image.record.file.slice(0, 12)}.${image.record.file.split('.').pop()}`,
    source: await readFile(image.path),
  })
  return new Code(`import.meta.ROLLUP_FILE_URL_${ref}`)
}
