import { createHash } from 'node:crypto'
import { realpath } from 'node:fs/promises'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import { ManifestError, type SourceLocation } from './errors'
import { sniffImageType, SNIFF_LENGTH } from './image-info'
import { megabytes, readRegularFile } from './read-file'

/**
 * The largest reference image read, hashed or uploaded (bytes). Atlas publishes no upload limit (ATLAS_API.md § 3);
 * 20 MB holds any sketch or photo a model takes as a reference, and stops a stray video or disk image being sent.
 */
export const REFERENCE_LIMIT = 20 * 1024 * 1024

/**
 * Resolves an entry's `image:` against its manifest, to its real absolute `path` (inside the project root)
 * and the `sha256` of its bytes. Files outside the project root (by `..`, an absolute path or a symlink)
 * and non-images are refused here, before anything could be sent to a provider, as is anything but a regular file
 * of at most `REFERENCE_LIMIT` bytes (checked before its bytes are read).
 */
export async function resolveReference(
  image: string,
  manifestPath: string,
  root: string,
  location: SourceLocation,
): Promise<{ path: string; sha256: string }> {
  const fail = (message: string): never => {
    throw new ManifestError(location.file, [{ location, message }])
  }
  if (isAbsolute(image)) fail(`\`image\` must be a path relative to the manifest, not an absolute path (got "${image}")`)
  const wanted = resolve(dirname(manifestPath), image)
  const [real, realRoot] = await Promise.all([realpath(wanted), realpath(root)]).catch(() =>
    fail(`\`image\` file not found: "${image}" (looked at ${relative(root, wanted) || wanted})`),
  )
  const inside = relative(realRoot, real)
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    fail(`\`image\` must stay inside the project root; "${image}" leads outside it, and local files outside the project are never sent`)
  }
  const bytes = await readRegularFile(real, REFERENCE_LIMIT, (why) =>
    fail(`\`image\` must be a regular file of at most ${megabytes(REFERENCE_LIMIT)}; "${image}" ${why}`),
  )
  // the first bytes say what it is: no image is decoded (nor sharp loaded) to check a reference
  if (!sniffImageType(bytes.subarray(0, SNIFF_LENGTH))) fail(`\`image\` must be a PNG, JPEG, WebP or AVIF image ("${image}" is not)`)
  return { path: real, sha256: createHash('sha256').update(bytes).digest('hex') }
}
