import { DamagedEntryError, type CachedImage, type ImageCache } from './cache'
import { entryLabel, type KeyedEntry } from './entries'
import { clip, ImagegenError, plural } from './errors'

/** One image to have: a key and every manifest entry that asks for it. */
export interface PlannedImage {
  key: string
  entries: KeyedEntry[]
  cached?: CachedImage
  /** Its cached entry is damaged and `imagegen generate --force` asked to pay for it again. */
  force?: true
}

export interface Plan {
  images: PlannedImage[]
  cached: PlannedImage[]
  missing: PlannedImage[]
}

/**
 * Groups entries by key (identical specs are made once) and asks the cache which keys it holds. A damaged entry is
 * never planned as missing: it throws one error listing every such entry, unless `force` names it (planned again).
 */
export function planImages(entries: readonly KeyedEntry[], cache: ImageCache, force: (image: PlannedImage) => boolean = () => false): Plan {
  const byKey = new Map<string, PlannedImage>()
  for (const entry of entries) {
    const image = byKey.get(entry.key)
    if (image) image.entries.push(entry)
    else byKey.set(entry.key, { key: entry.key, entries: [entry] })
  }
  const images = [...byKey.values()]
  const damaged: [PlannedImage, DamagedEntryError][] = []
  for (const image of images) {
    try {
      image.cached = cache.lookup(image.key)
    } catch (error) {
      if (!(error instanceof DamagedEntryError)) throw error
      if (force(image)) image.force = true
      else damaged.push([image, error])
    }
  }
  if (damaged.length > 0) throw damagedImagesError(damaged)
  return { images, cached: images.filter((image) => image.cached), missing: images.filter((image) => !image.cached) }
}

/** The name of an image in one line: its first entry, and how many others share it. */
export function imageLabel(image: PlannedImage): string {
  const more = image.entries.length - 1
  return `${entryLabel(image.entries[0]!)}${more > 0 ? ` (+${more} more)` : ''}`
}

export class BudgetError extends ImagegenError {
  override name = 'BudgetError'
  constructor(wanted: number, left: number, limit: number) {
    super(
      'BUDGET',
      `${plural(wanted, 'new image')} would be generated, more than \`maxNewImages\` allows ` +
        `(${limit}${left < limit ? `, ${left} left in this run` : ''}). Nothing was submitted.`,
      { hint: `To allow it, raise \`maxNewImages\` in the plugin options or run \`imagegen generate --max-new ${wanted}\`.` },
    )
  }
}

/**
 * The bill guard: how many new images one build, one dev server (for its whole life) or
 * one CLI run may still pay for. Every path that submits asks it first.
 */
export class BillGuard {
  private spent = new Set<string>()

  constructor(readonly limit: number) {}

  get left(): number {
    return this.limit - this.spent.size
  }

  /** Whether these images (new keys among them) fit in what is left. */
  fits(images: readonly PlannedImage[]): boolean {
    return this.fresh(images).length <= this.left
  }

  /** Counts these images against the limit, or throws a `BudgetError` and counts none. */
  take(images: readonly PlannedImage[]): void {
    const fresh = this.fresh(images)
    if (fresh.length > this.left) throw new BudgetError(fresh.length, this.left, this.limit)
    for (const image of fresh) this.spent.add(image.key)
  }

  private fresh(images: readonly PlannedImage[]): PlannedImage[] {
    return images.filter((image) => !this.spent.has(image.key))
  }
}

/** How `imagegen generate --force` names an entry: `<manifest>#<entry>` (the manifest alone when it holds one image). */
export const forceName = (entry: KeyedEntry): string => `${entry.location.file}${entry.name === undefined ? '' : `#${entry.name}`}`

/** What to do about a damaged cached image of `entry`. */
export function damagedHint(entry: KeyedEntry, file: string, lfsPointer = false): string {
  const restore = lfsPointer ? 'Fetch the Git LFS files with `git lfs pull`, or restore' : 'Restore'
  return `${restore} the file from git (\`git checkout -- ${file}\`), or run \`imagegen generate --force ${forceName(entry)}\` to pay for it again.`
}

/** Cached images that a build needs and cannot trust: each listed by entry and file, with the fix. */
function damagedImagesError(damaged: readonly [PlannedImage, DamagedEntryError][]): ImagegenError {
  const lines = damaged.map(([image, error]) => `  ${imageLabel(image)}: ${error.path}: ${error.problem}`)
  const [image, error] = damaged[0]!
  const entry = image.entries[0]!
  return new ImagegenError(
    'IO',
    `${plural(damaged.length, 'cached image is', 'cached images are')} damaged; nothing was submitted, as a damaged entry is never paid for again on its own.\n${lines.join('\n')}\n`,
    { hint: damagedHint(entry, error.path, damaged.some(([, e]) => e.lfsPointer)), loc: entry.location },
  )
}

/** Images that a build needs and cannot have: each listed by file, line and name. */
export function missingImagesError(entries: readonly KeyedEntry[], reason: string): ImagegenError {
  const lines = entries.map((entry) => `  ${entryLabel(entry)}: ${clip(entry.pixels.prompt, 60)}`)
  return new ImagegenError(
    'MISSING',
    `${plural(entries.length, 'image is', 'images are')} not in the cache and cannot be generated: ${reason}. Nothing was submitted.\n${lines.join('\n')}\n`,
    { hint: 'To fix it, set ATLASCLOUD_API_KEY and build again, or run `imagegen generate` where the key is set and commit the `.imagegen/` folder.' },
  )
}
