import { isAbsolute, relative, sep } from 'node:path'

/**
 * The errors of unplugin-imagegen, as data: a `code`, what happened (`reason`), what to do
 * (`hint`), where (`loc`, `id`) and why (`cause`). `message` is the reason and the hint joined,
 * built once here; the `[imagegen]` prefix is added only where text reaches a terminal
 * (`forTerminal`), never stored in a message. Bundlers read `id` and `loc` as Rollup's
 * `RollupError` defines them, so Vite's overlay points at the manifest's line.
 */

/** Where in a manifest something is, 1-based, as editors show it; `file` as messages show it. */
export interface SourceLocation {
  file: string
  line: number
  column: number
}

/**
 * What kind of failure: a manifest that does not parse or validate (`MANIFEST`), bad options, config
 * file or flags (`OPTIONS`), a bad CLI invocation (`USAGE`), images that cannot be generated now
 * (`MISSING`), the bill guard (`BUDGET`), images that failed (`GENERATION`), the image service
 * (`PROVIDER`), a stopped run (`STOPPED`), a file that cannot be read or written (`IO`).
 */
export type ErrorCode = 'MANIFEST' | 'OPTIONS' | 'USAGE' | 'MISSING' | 'BUDGET' | 'GENERATION' | 'PROVIDER' | 'STOPPED' | 'IO'

export interface ErrorDetails {
  /** What the user can do about it; appended to the message. */
  hint?: string
  /** The manifest position the error is about. */
  loc?: SourceLocation
  /** Absolute path of the file the error is about. */
  id?: string
  cause?: unknown
}

/** The prefix of every line of ours on a terminal or a log. */
export const PREFIX = '[imagegen]'

/** Every error raised on purpose; `message` is ready for a user. */
export class ImagegenError extends Error {
  override name = 'ImagegenError'
  readonly reason: string
  readonly hint?: string
  /** Rollup's shape: an absolute `file` when `id` is known (editors open it), else as shown. */
  loc?: { file: string; line: number; column: number }
  id?: string

  constructor(
    readonly code: ErrorCode,
    reason: string,
    details: ErrorDetails = {},
  ) {
    super(details.hint ? `${reason}${reason.endsWith('\n') ? '' : ' '}${details.hint}` : reason, details.cause === undefined ? undefined : { cause: details.cause })
    this.reason = reason
    this.hint = details.hint
    this.id = details.id
    if (details.loc) this.loc = { ...details.loc, file: details.id ?? details.loc.file }
    // The message says all a user needs; bundlers that print the stack would bury it in frames.
    this.stack = `${new.target.name}: ${this.message}`
  }
}

/** One problem of a manifest: where, and what is wrong there (with the fix). */
export interface ManifestProblem {
  location: SourceLocation
  message: string
}

/** One or more problems in one manifest file, reported together. */
export class ManifestError extends ImagegenError {
  override name = 'ManifestError'
  readonly problems: ManifestProblem[]
  constructor(
    readonly file: string,
    problems: ManifestProblem[],
  ) {
    problems = [...problems].sort((a, b) => a.location.line - b.location.line || a.location.column - b.location.column)
    const first = problems[0]!
    super(
      'MANIFEST',
      problems.length === 1
        ? `${formatLocation(first.location)}: ${first.message}`
        : `${problems.length} problems in ${file}:\n${problems.map((p) => `  ${formatLocation(p.location)}: ${p.message}`).join('\n')}`,
      { loc: first.location },
    )
    this.problems = problems
  }

  /** Names the manifest's absolute path, for bundlers (`id`, `loc.file`). */
  at(id: string): this {
    this.id = id
    this.loc = { ...this.problems[0]!.location, file: id }
    return this
  }
}

export interface ProviderErrorDetails extends ErrorDetails {
  predictionId?: string
  /** The HTTP status (or envelope code) of the answer, when there was one. */
  status?: number
  /** Whether trying the same request again may succeed. */
  retryable?: boolean
  /**
   * The prediction ended and will never deliver an image (it failed, is gone, or its output
   * is unusable): its journal entry is useless and the next run submits afresh. Any other
   * error keeps the journal, so what was paid for is resumed, not paid again.
   */
  predictionOver?: boolean
}

/** A failure of the image service for one image (refused, failed, unreachable, unusable output). */
export class ProviderError extends ImagegenError {
  override name = 'ProviderError'
  readonly predictionId?: string
  readonly status?: number
  readonly retryable: boolean
  readonly predictionOver: boolean
  constructor(reason: string, details: ProviderErrorDetails = {}) {
    super('PROVIDER', reason, details)
    this.predictionId = details.predictionId
    this.status = details.status
    this.retryable = details.retryable ?? false
    this.predictionOver = details.predictionOver ?? false
  }

  /** The same failure with other fields or advice (e.g. a submit that must not be sent again). */
  with(details: ProviderErrorDetails): ProviderError {
    const { predictionId, status, retryable, predictionOver, hint } = this
    return new ProviderError(this.reason, { predictionId, status, retryable, predictionOver, hint, cause: this.cause, ...details })
  }
}

/** Text for a terminal or a log: ours prefixed, anything unexpected with its stack. */
export function forTerminal(error: unknown): string {
  if (error instanceof ImagegenError) return `${PREFIX} ${error.message}`
  return `${PREFIX} unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.column}`
}

/** A path as messages show it: relative to the root with forward slashes, or absolute when outside it. */
export function displayPath(root: string, file: string): string {
  const rel = relative(root, file)
  return (rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? file : rel).split(sep).join('/')
}

/** `1 image`, `2 images`; `many` for irregular plurals. */
export const plural = (n: number, word: string, many = `${word}s`): string => `${n} ${n === 1 ? word : many}`

/** The shortest piece of a secret that `scrub` removes: shorter ones match ordinary text too often. */
const PIECE = 8

/**
 * `text` without `secret`: every run of characters made of its pieces of 8 or more (the whole secret when shorter,
 * nothing when under 4 characters) becomes `***`, so an echo that was cut, by us or by whoever sent it, leaves no
 * usable part. Scrub before `clip`ping, never after: the clip may cut a secret that nothing then recognises.
 */
export function scrub(text: string, secret: string | undefined): string {
  if (!secret || secret.length < 4) return text
  if (secret.length <= PIECE) return text.split(secret).join('***')
  const pieces = new Set<string>()
  for (let i = 0; i + PIECE <= secret.length; i++) pieces.add(secret.slice(i, i + PIECE).replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  const piece = new RegExp([...pieces].join('|'), 'g')
  let out = ''
  // `from`: the first character not yet copied; `end`: where the last run of pieces ends (touching runs are one)
  let from = 0
  let end = -1
  // every start, overlapping ones too
  for (let m = piece.exec(text); m; piece.lastIndex = m.index + 1, m = piece.exec(text)) {
    if (m.index > end) out += `${text.slice(from, m.index)}***`
    end = from = m.index + PIECE
  }
  return out + text.slice(from)
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' })

/**
 * One line of at most `max` units, `…` ending a cut one, cut between graphemes (an emoji or a CJK character is kept
 * whole or left out). A unit is a grapheme unless `width` measures each (the CLI passes `string-width`'s terminal
 * columns). Text from a service is `scrub`bed first.
 */
export function clip(text: string, max: number, width?: (grapheme: string) => number): string {
  const line = text.replace(/\s+/g, ' ').trim()
  // never more graphemes than code units
  if (!width && line.length <= max) return line
  const parts = Array.from(graphemes.segment(line), ({ segment }) => segment)
  const measure = width ?? (() => 1)
  if (parts.reduce((sum, part) => sum + measure(part), 0) <= max) return line
  let out = ''
  let used = measure('…')
  for (const part of parts) {
    if ((used += measure(part)) > max) break
    out += part
  }
  return `${out}…`
}
