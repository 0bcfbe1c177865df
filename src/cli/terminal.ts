import { ImagegenError } from '../core/errors'

/** The exit codes every command shares (see the README). */
export const EXIT = {
  ok: 0,
  /** Something is missing, failed or damaged. */
  incomplete: 1,
  /** Bad arguments, config file or manifests: fix the input and run again. */
  usage: 2,
  /** Stopped by Ctrl-C (128 + SIGINT), as shells expect. */
  interrupted: 130,
  /** Stopped by SIGTERM (128 + 15), as a CI cancel sends it. */
  terminated: 143,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** The exit code an error ends a command with: bad input is 2, anything else 1. */
export function exitCodeOf(error: unknown): ExitCode {
  const input = error instanceof ImagegenError && (error.code === 'USAGE' || error.code === 'OPTIONS' || error.code === 'MANIFEST')
  return input ? EXIT.usage : EXIT.incomplete
}

export const usageError = (message: string) => new ImagegenError('USAGE', message, { hint: '(see `imagegen --help`)' })

/** Where a command writes: data to `out` (stdout), everything for people to `err` (stderr). */
export interface Terminal {
  out(line: string): void
  err(line: string): void
  /** The raw stderr stream, for the progress bar. */
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }
  /** True when stderr is a terminal that can redraw a line. */
  readonly interactive: boolean
}

/** What a command gets from its caller (the process, or a test): where it runs, its environment, where it writes. */
export interface CommandContext {
  cwd: string
  env: NodeJS.ProcessEnv
  terminal: Terminal
  /** Subscribes to Ctrl-C and SIGTERM while a command can stop cleanly; returns the unsubscribe. */
  onSignal?: (listener: (name: 'SIGINT' | 'SIGTERM') => void) => () => void
}

/** `812 B`, `45.1 kB`, `3.2 MB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`
  return `${(bytes / 1_000_000).toFixed(1)} MB`
}

export const formatSeconds = (s: number) => `${s.toFixed(1)}s`

/** Pads every column but the last to its widest cell. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd())
}
