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

/** An error that ends the command with its exit code. */
export class CliError extends ImagegenError {
  override name = 'CliError'
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message)
  }
}

export const usageError = (message: string) => new CliError(`${message} (see \`imagegen --help\`)`, EXIT.usage)

/** Where a command writes: data to `out` (stdout), everything for people to `err` (stderr). */
export interface Terminal {
  out(line: string): void
  err(line: string): void
  /** The raw stderr stream, for the progress bar. */
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }
  /** True when stderr is a terminal that can redraw a line. */
  readonly interactive: boolean
}

export function processTerminal(env: NodeJS.ProcessEnv = process.env): Terminal {
  return {
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
    stderr: process.stderr,
    interactive: process.stderr.isTTY === true && env.TERM !== 'dumb',
  }
}

export const plural = (n: number, word: string, many = `${word}s`) => `${n} ${n === 1 ? word : many}`

/** `812 B`, `45.1 kB`, `3.2 MB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`
  return `${(bytes / 1_000_000).toFixed(1)} MB`
}

export const formatSeconds = (s: number) => `${s.toFixed(1)}s`

export function clip(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

/** Pads every column but the last to its widest cell. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd())
}
