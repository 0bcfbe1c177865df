import { isUtf8 } from 'node:buffer'
import { createRequire } from 'node:module'
import type { Document, Node, Pair, Scalar, YAMLMap } from 'yaml'
import type { core } from 'zod/mini'
import { didYouMean } from './did-you-mean'
import { ManifestError, type ManifestProblem, type SourceLocation } from './errors'
import { BUILTIN_DEFAULTS, FIELD_NAMES, schemas, type ImageFields, type ImageSpec } from './schema'

type Yaml = typeof import('yaml')
let yamlModule: Yaml | undefined
/**
 * The `yaml` package, loaded on first use (synchronously, its CommonJS build, which is what Node imports too): a build
 * whose manifests are all in the parsed store never loads it. Every core module that reads YAML gets it here.
 */
export const yaml = (): Yaml => (yamlModule ??= createRequire(import.meta.url)('yaml') as Yaml)

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
  const { isMap, isScalar, isSeq, LineCounter, parseDocument } = yaml()
  const lineCounter = new LineCounter()
  // yaml's own unique-key check compares each key with every earlier one of its map: quadratic in entries
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false })
  const at = (offset: number): SourceLocation => {
    const { line, col } = lineCounter.linePos(offset)
    return { file, line, column: col }
  }

  const problems = doc.errors.map((e) => ({ location: at(e.pos[0]), message: yamlMessage(e.message) }))
  // `!env NAME`, `!!js/function`…: a tag we do not know would become a literal string, sent (and billed) as a prompt
  for (const warning of doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED')) {
    const tag = text.slice(warning.pos[0], warning.pos[1])
    problems.push({ location: at(warning.pos[0]), message: `the tag \`${tag}\` is not supported: a manifest is plain YAML data (remove the tag; quote the text if it is meant literally)` })
  }
  for (const [first, again] of duplicateKeys(doc)) {
    const message = `\`${again.value}\` appears twice in the same map (first at line ${at(first.range![0]).line}): every field and entry name must be unique`
    problems.push({ location: at(again.range![0]), message })
  }
  // zod and the imported object would both drop it without a word
  const images = isMap(doc.contents) ? doc.contents.get('images', true) : undefined
  for (const pair of isMap(images) ? images.items : []) {
    if (isScalar(pair.key) && pair.key.value === '__proto__') {
      problems.push({ location: at(pair.key.range![0]), message: '`__proto__` cannot name an entry: the import is a JavaScript object, where it names no property' })
    }
  }
  if (problems.length > 0) throw new ManifestError(file, problems)
  const root = doc.contents
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
    const message = 'the manifest is empty: write a `prompt:` for one image, or `images:` for a collection'
    throw new ManifestError(file, [{ location: at(0), message }])
  }
  if (!isMap(root)) {
    const what = isSeq(root) ? 'a list' : 'a single value'
    const message = `the top level must be a map of fields (\`prompt:\`, \`width:\`, …) or of \`defaults:\` and \`images:\`, not ${what}`
    throw new ManifestError(file, [{ location: at(root.range[0]), message }])
  }

  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: 100 })
  } catch (error) {
    throw new ManifestError(file, [{ location: at(0), message: `the YAML cannot be read: ${(error as Error).message}` }])
  }

  const locate = locator(doc, at)
  const isCollection = root.items.some((pair) => isScalar(pair.key) && COLLECTION_KEYS.includes(String(pair.key.value)))
  return isCollection ? readCollection(data, file, locate) : readSingle(data, file, locate, at(root.items[0]?.key.range[0] ?? 0))
}

function readSingle(data: unknown, file: string, locate: Locator, start: SourceLocation): Manifest {
  const result = schemas().imageFields.safeParse(data)
  if (!result.success) throw new ManifestError(file, zodProblems(result.error, locate, FIELD_NAMES))
  const fields = result.data
  const problems: ManifestProblem[] = []
  if (fields.prompt === undefined) problems.push({ location: start, message: '`prompt` is required: describe the image to generate' })
  problems.push(...checkWidths(fields, [], locate))
  if (problems.length > 0) throw new ManifestError(file, problems)
  return { kind: 'single', entries: [{ spec: applyDefaults(fields), location: start }] }
}

function readCollection(data: unknown, file: string, locate: Locator): Manifest {
  const result = schemas().collection.safeParse(data)
  if (!result.success) throw new ManifestError(file, zodProblems(result.error, locate, COLLECTION_KEYS))
  const { defaults = {}, images } = result.data
  const problems: ManifestProblem[] = []
  const entries: ManifestEntry[] = []
  for (const [name, own] of Object.entries(images)) {
    // An entry's own fields win; `input` maps are merged field by field.
    const merged = { ...defaults, ...own }
    if (defaults.input && own.input) merged.input = { ...defaults.input, ...own.input }
    const location = locate.key(['images', name])
    if (merged.prompt === undefined) {
      problems.push({ location, message: `\`images.${name}.prompt\` is required: describe the image to generate` })
      continue
    }
    const tooWide = checkWidths(merged, own.widths ? ['images', name] : ['defaults'], locate)
    problems.push(...tooWide)
    if (tooWide.length === 0) entries.push({ name, spec: applyDefaults(merged), location })
  }
  if (Object.keys(images).length === 0) {
    problems.push({ location: locate.value(['images']), message: '`images` is empty: add at least one entry, like `banner: { prompt: … }`' })
  }
  if (problems.length > 0) throw new ManifestError(file, problems)
  return { kind: 'collection', entries }
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
  const message =
    `\`${at.join('.')}\` must not exceed \`width\` (${width}), images are never upscaled (got ${tooWide.join(', ')}): ` +
    `remove ${tooWide.length === 1 ? 'it' : 'them'} or raise \`width\``
  return [{ location: locate.value(at), message }]
}

/** `topLevel`: the names a misspelt top-level key is compared with (nested ones are always image fields). */
function zodProblems(error: core.$ZodError, locate: Locator, topLevel: readonly string[]): ManifestProblem[] {
  return error.issues.map((issue) => {
    const path = issue.path as Path
    if (issue.code === 'unrecognized_keys') {
      const known = path.length === 0 ? topLevel : FIELD_NAMES
      const problems = issue.keys.map((key) => {
        const guess = didYouMean(key, known)
        const where = path.length ? ` in \`${path.join('.')}\`` : ''
        const hint = guess ? `did you mean \`${guess}\`?` : `known fields: ${known.join(', ')}`
        return `unknown field \`${key}\`${where}: ${hint}`
      })
      return { location: locate.key([...path, issue.keys[0]!]), message: problems.join('; ') }
    }
    const name = path.length ? `\`${path.join('.')}\`` : 'the manifest'
    return { location: locate.value(path), message: `${name} ${issue.message}` }
  })
}

function decodeUtf8(bytes: Uint8Array, file: string): string {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  if (isUtf8(bytes)) return decoder.decode(bytes)
  // Fed one byte at a time, the decoder returns each character once complete and throws at the first bad byte
  // (or never, when the text ends inside a character): what it returned is all the text before the bad sequence.
  let before = ''
  for (const byte of bytes) {
    try {
      before += decoder.decode(Uint8Array.of(byte), { stream: true })
    } catch {
      break
    }
  }
  const lines = before.split('\n')
  const location = { file, line: lines.length, column: lines.at(-1)!.length + 1 }
  throw new ManifestError(file, [{ location, message: 'the manifest is not valid UTF-8 text: save it as UTF-8' }])
}

/** Every key that repeats an earlier key of its map (as text, as `toJS` names them), with that earlier key; one pass. */
function duplicateKeys(doc: Document.Parsed): [Scalar, Scalar][] {
  const { isScalar, visit } = yaml()
  const repeated: [Scalar, Scalar][] = []
  visit(doc, {
    Map(_, map) {
      const seen = new Map<string, Scalar>()
      for (const { key } of map.items) {
        if (!isScalar(key)) continue
        const first = seen.get(String(key.value))
        if (first) repeated.push([first, key])
        else seen.set(String(key.value), key)
      }
    },
  })
  return repeated
}

type Locator = ReturnType<typeof locator>

/**
 * Where a path of the data is in the YAML. `key(path)`: the key of the pair at `path`, else the
 * node where the path stops. `value(path)`: the value at `path`, else as `key`. Each map's keys
 * are indexed on first use, so locating every entry of a collection is linear in its size.
 */
function locator(doc: Document.Parsed, at: (offset: number) => SourceLocation) {
  const { isMap, isScalar, isSeq } = yaml()
  const offset = (node: unknown) => (node as Node | null | undefined)?.range?.[0]
  const indexes = new Map<YAMLMap, Map<string, Pair>>()
  const pairOf = (map: YAMLMap, segment: string | number) => {
    let index = indexes.get(map)
    if (!index) {
      // Compared as text: `toJS` (and so zod's path) turns a key `1:` into "1".
      index = new Map(map.items.flatMap((p) => (isScalar(p.key) ? [[String(p.key.value), p] as const] : [])))
      indexes.set(map, index)
    }
    return index.get(String(segment))
  }
  /** The node `path` leads to (`found`: all of it), and the last pair on the way. */
  const follow = (path: Path) => {
    let node: unknown = doc.contents
    let pair: Pair | undefined
    for (const segment of path) {
      if (isMap(node)) {
        pair = pairOf(node, segment)
        if (!pair) return { node, found: false }
        node = pair.value
      } else if (isSeq(node) && typeof segment === 'number' && node.items[segment]) {
        pair = undefined
        node = node.items[segment]
      } else {
        return { node, pair, found: false }
      }
    }
    return { node, pair, found: true }
  }
  const key = (path: Path): SourceLocation => {
    const { node, pair } = follow(path)
    return at(offset(pair?.key) ?? offset(node) ?? 0)
  }
  const value = (path: Path): SourceLocation => {
    const { node, found } = follow(path)
    const start = found ? offset(node) : undefined
    return start === undefined ? key(path) : at(start)
  }
  return { key, value }
}

function yamlMessage(message: string): string {
  if (/call stack/i.test(message)) return 'the YAML is nested too deeply to read: manifests hold flat fields and small maps'
  const firstLine = message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
  return `the YAML is invalid: ${firstLine} (check quotes, indentation and the \`:\` after each name)`
}
