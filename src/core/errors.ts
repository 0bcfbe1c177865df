import { isAbsolute, relative, sep } from 'node:path'

/** Where in a manifest something is, 1-based, as editors show it. */
export interface SourceLocation {
  file: string
  line: number
  column: number
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.column}`
}

/** A path as messages show it: relative to the root with forward slashes, or absolute when outside it. */
export function displayPath(root: string, file: string): string {
  const rel = relative(root, file)
  return (rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? file : rel).split(sep).join('/')
}

/** Every error the plugin raises on purpose; its message is ready for a user. */
export class ImagegenError extends Error {
  override name = 'ImagegenError'
  constructor(message: string) {
    super(message.startsWith('[imagegen]') ? message : `[imagegen] ${message}`)
    // The message says all a user needs; bundlers that print the stack would bury it in frames.
    this.stack = `${this.name}: ${this.message}`
  }
}

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
    super(
      problems.length === 1
        ? `${formatLocation(problems[0]!.location)}: ${problems[0]!.message}`
        : `${problems.length} problems in ${file}:\n` +
            problems.map((p) => `  ${formatLocation(p.location)}: ${p.message}`).join('\n'),
    )
    this.problems = problems
  }
}
