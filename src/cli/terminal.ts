import { ImagegenError } from '../core/errors'

/** The exit codes every command shares (see the README); 130 and 143 are 128 + the signal, as shells expect. */
export const EXIT = { ok: 0, incomplete: 1, usage: 2, interrupted: 130, terminated: 143 } as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

export const usageError = (message: string) => new ImagegenError('USAGE', message, { hint: '(see `imagegen --help`)' })

/** Where a command writes: data to `out` (stdout), everything for people to `err` (stderr). */
export interface Terminal {
  out(line: string): void
  err(line: string): void
  /** The raw stderr stream, for the progress bar. */
  readonly stderr: NodeJS.WritableStream & { columns?: number }
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

export const formatSeconds = (s: number) => `${s.toFixed(1)}s`

/** Pads every column but the last to its widest cell, and puts `gap` spaces between columns. */
export function table(rows: readonly (readonly string[])[], gap = 2): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join(' '.repeat(gap)).trimEnd())
}
