import { readFile } from 'node:fs/promises'
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml'
import type { z } from 'zod'
import { didYouMean } from './did-you-mean'
import { ManifestError, type ManifestProblem, type SourceLocation } from './errors'
import { BUILTIN_DEFAULTS, collectionSchema, FIELD_NAMES, imageFieldsSchema, type ImageFields, type ImageSpec } from './schema'

export const MANIFEST_PATTERN = /\.images\.ya?ml$/

export interface ManifestEntry {
  /** The entry's name in a collection; absent for a single-image manifest. */
  name?: string
  spec: ImageSpec
  /** Where the entry starts: its name in a collection, the first field of a single image. */
  location: SourceLocation
}

export interface Manifest {
  kind: 'single' | 'collection'
  entries: ManifestEntry[]
}

type Path = readonly (string | number)[]

const COLLECTION_KEYS = ['defaults', 'images']

/**
 * Parses and validates one manifest. `file` is the name used in messages
 * (relative to the project root). Throws only `ManifestError`.
 */
export function parseManifest(source: string | Uint8Array, file: string): Manifest {
  const text = typeof source === 'string' ? source : decodeUtf8(source, file)
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const at = (offset: number): SourceLocation => {
    const { line, col } = lineCounter.linePos(offset)
    return { file, line, column: col }
  }
  const start = { file, line: 1, column: 1 }

  if (doc.errors.length > 0) {
    throw new ManifestError(
      file,
      doc.errors.map((e) => ({ location: at(e.pos[0]), message: yamlMessage(e.code, e.message, text.slice(e.pos[0])) })),
    )
  }
  const root = doc.contents
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
    throw new ManifestError(file, [
      { location: start, message: 'the manifest is empty: write a `prompt:` for one image, or `images:` for a collection' },
    ])
  }
  if (!isMap(root)) {
    const what = isSeq(root) ? 'a list' : 'a single value'
    throw new ManifestError(file, [
      {
        location: at(root.range?.[0] ?? 0),
        message: `the top level must be a map of fields (\`prompt:\`, \`width:\`, …) or of \`defaults:\` and \`images:\`, not ${what}`,
      },
    ])
  }

  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: 100 })
  } catch (error) {
    throw new ManifestError(file, [{ location: start, message: `the YAML cannot be read: ${(error as Error).message}` }])
  }

  const locate = locator(doc, at, start)
  const isCollection = root.items.some((pair) => isScalar(pair.key) && COLLECTION_KEYS.includes(String(pair.key.value)))
  return isCollection ? readCollection(data, file, locate) : readSingle(data, file, locate)
}

export async function loadManifest(path: string, displayName: string): Promise<Manifest> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (error) {
    throw new ManifestError(displayName, [
      { location: { file: displayName, line: 1, column: 1 }, message: `cannot read the manifest: ${(error as NodeJS.ErrnoException).code ?? error}` },
    ])
  }
  return parseManifest(bytes, displayName)
}

function readSingle(data: unknown, file: string, locate: Locator): Manifest {
  const result = imageFieldsSchema.safeParse(data)
  const problems = result.success ? [] : zodProblems(result.error, locate, [])
  const fields = (result.success ? result.data : {}) as ImageFields
  if (result.success && fields.prompt === undefined) {
    problems.push({ location: locate.key([]), message: '`prompt` is required: describe the image to generate' })
  }
  if (result.success) problems.push(...checkWidths(fields, [], locate))
  if (problems.length > 0) throw new ManifestError(file, problems)
  return { kind: 'single', entries: [{ spec: applyDefaults(fields), location: locate.key([]) }] }
}

function readCollection(data: unknown, file: string, locate: Locator): Manifest {
  const result = collectionSchema.safeParse(data)
  if (!result.success) throw new ManifestError(file, zodProblems(result.error, locate, []))
  const { defaults = {}, images } = result.data
  const problems: ManifestProblem[] = []
  const entries: ManifestEntry[] = []
  for (const [name, own] of Object.entries(images)) {
    const merged = mergeDefaults(defaults, own)
    const location = locate.key(['images', name])
    if (merged.prompt === undefined) {
      problems.push({ location, message: `\`images.${name}.prompt\` is required: describe the image to generate` })
      continue
    }
    const widthProblems = checkWidths(merged, own.widths ? ['images', name] : ['defaults'], locate)
    problems.push(...widthProblems)
    if (widthProblems.length === 0) entries.push({ name, spec: applyDefaults(merged), location })
  }
  if (Object.keys(images).length === 0) {
    problems.push({ location: locate.value(['images']), message: '`images` is empty: add at least one entry, like `banner: { prompt: … }`' })
  }
  if (problems.length > 0) throw new ManifestError(file, problems)
  return { kind: 'collection', entries }
}

/** An entry's own fields win; `input` maps are merged field by field. */
function mergeDefaults(defaults: ImageFields, own: ImageFields): ImageFields {
  const merged = { ...defaults, ...own }
  if (defaults.input && own.input) merged.input = { ...defaults.input, ...own.input }
  return merged
}

function applyDefaults(fields: ImageFields): ImageSpec {
  const spec = { ...BUILTIN_DEFAULTS, ...fields } as ImageSpec
  spec.alt ??= spec.prompt
  return spec
}

function checkWidths(fields: ImageFields, path: Path, locate: Locator): ManifestProblem[] {
  const width = fields.width ?? BUILTIN_DEFAULTS.width
  const tooWide = (fields.widths ?? []).filter((w) => w > width)
  if (tooWide.length === 0) return []
  const at = [...path, 'widths']
  return [
    {
      location: locate.value(at),
      message: `\`${dotted(at)}\` must not exceed \`width\` (${width}), images are never upscaled (got ${tooWide.join(', ')}): remove ${tooWide.length === 1 ? 'it' : 'them'} or raise \`width\``,
    },
  ]
}

function zodProblems(error: z.ZodError, locate: Locator, base: Path): ManifestProblem[] {
  return error.issues.map((issue) => {
    const path = [...base, ...(issue.path as Path)]
    if (issue.code === 'unrecognized_keys') {
      const known = path.length === 0 || (path.length === 1 && path[0] !== 'defaults') ? topLevelNames(locate) : FIELD_NAMES
      const problems = issue.keys.map((key) => {
        const guess = didYouMean(key, known)
        const where = path.length ? ` in \`${dotted(path)}\`` : ''
        const hint = guess ? `did you mean \`${guess}\`?` : `known fields: ${known.join(', ')}`
        return `unknown field \`${key}\`${where}: ${hint}`
      })
      return { location: locate.key([...path, issue.keys[0]!]), message: problems.join('; ') }
    }
    const name = path.length ? `\`${dotted(path)}\`` : 'the manifest'
    return { location: locate.value(path), message: `${name} ${issue.message}` }
  })
}

function topLevelNames(locate: Locator): readonly string[] {
  return locate.isCollection ? COLLECTION_KEYS : FIELD_NAMES
}

const dotted = (path: Path) => path.join('.')

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    const offset = firstInvalidUtf8(bytes)
    const before = new TextDecoder().decode(bytes.subarray(0, offset))
    const lines = before.split('\n')
    throw new ManifestError(file, [
      {
        location: { file, line: lines.length, column: lines.at(-1)!.length + 1 },
        message: 'the manifest is not valid UTF-8 text: save it as UTF-8',
      },
    ])
  }
}

function firstInvalidUtf8(bytes: Uint8Array): number {
  let low = 0
  let high = bytes.length
  const decoder = new TextDecoder('utf-8', { fatal: true })
  // The longest prefix that still decodes (allowing a cut multi-byte tail) ends where the bad byte is.
  while (low < high) {
    const mid = Math.ceil((low + high) / 2)
    try {
      decoder.decode(bytes.subarray(0, mid), { stream: true })
      decoder.decode()
      low = mid
    } catch {
      high = mid - 1
    }
  }
  return low
}

interface Locator {
  isCollection: boolean
  /** The key of the pair at `path` (falls back to the nearest existing parent). */
  key(path: Path): SourceLocation
  /** The value at `path` (falls back to its key, then to the nearest parent). */
  value(path: Path): SourceLocation
}

function locator(doc: Document, at: (offset: number) => SourceLocation, start: SourceLocation): Locator {
  const root = doc.contents
  const isCollection =
    isMap(root) && root.items.some((pair) => isScalar(pair.key) && COLLECTION_KEYS.includes(String(pair.key.value)))

  function pairAt(path: Path): { pair?: Pair; parent?: Node } {
    let node: unknown = root
    let pair: Pair | undefined
    for (const segment of path) {
      if (isMap(node)) {
        pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment))
        if (!pair) return { parent: node }
        node = pair.value
      } else if (isSeq(node) && typeof segment === 'number' && node.items[segment]) {
        pair = undefined
        node = node.items[segment]
      } else {
        return { pair, parent: node as Node | undefined }
      }
    }
    return { pair, parent: node as Node | undefined }
  }
  const offsetOf = (node: unknown): number | undefined => (node as Node | null)?.range?.[0]

  function valueNode(path: Path): unknown {
    let node: unknown = root
    for (const segment of path) {
      if (isMap(node)) node = node.get(segment, true)
      else if (isSeq(node) && typeof segment === 'number') node = node.items[segment]
      else return undefined
    }
    return node
  }

  return {
    isCollection,
    key(path) {
      if (path.length === 0) {
        const first = isMap(root) ? root.items[0]?.key : root
        return at(offsetOf(first) ?? 0)
      }
      const { pair, parent } = pairAt(path)
      const offset = offsetOf(pair?.key) ?? offsetOf(parent)
      return offset === undefined ? start : at(offset)
    },
    value(path) {
      const node = valueNode(path)
      const offset = offsetOf(node) ?? offsetOf(pairAt(path).pair?.key) ?? offsetOf(pairAt(path).parent)
      return offset === undefined ? start : at(offset)
    },
  }
}

function yamlMessage(code: string, message: string, source: string): string {
  if (code === 'DUPLICATE_KEY') {
    const name = source.split(/[:\n]/)[0]!.trim()
    return `\`${name}\` appears twice in the same map: every field and entry name must be unique`
  }
  if (/call stack/i.test(message)) return 'the YAML is nested too deeply to read: manifests hold flat fields and small maps'
  const firstLine = message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
  return `the YAML is invalid: ${firstLine} (check quotes, indentation and the \`:\` after each name)`
}
