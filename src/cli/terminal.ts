import pc from 'picocolors'
import stringWidth from 'string-width'
import { clip, ImagegenError } from '../core/errors'

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
  /** True to colour errors (red) and warnings (yellow): picocolors' choice (`NO_COLOR` wins over `FORCE_COLOR`, a TTY or `CI`). */
  readonly color?: boolean
}

const PALETTES = [pc.createColors(false), pc.createColors(true)] as const

/** picocolors' formatters (`red(text)`…), which leave text as it is when the terminal takes no colours. */
export const colors = (terminal: Terminal) => PALETTES[terminal.color ? 1 : 0]

/**
 * A line made safe for a terminal: control characters (but tab and newline, and our colours' SGR sequences) and
 * bidirectional overrides become `\uXXXX` text, so a prompt, an entry name or a service's error cannot clear the
 * screen, retitle the window, plant a hyperlink or reverse what follows (Unicode TR36 on bidi spoofing). Inside a
 * JSON string that text is the same character's escape, so `--json` documents keep their data.
 */
export const printable = (line: string): string =>
  line.replace(/\x1b\[[0-9;]*m|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (found) =>
    found.length > 1 ? found : `\\u${found.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )

/** An error for people, on stderr: red where the terminal takes colours. */
export const printError = (terminal: Terminal, text: string) => terminal.err(colors(terminal).red(text))

/** A warning for people, on stderr: yellow where the terminal takes colours. */
export const printWarning = (terminal: Terminal, text: string) => terminal.err(colors(terminal).yellow(text))

/** What a command gets from its caller (the process, or a test): where it runs, its environment, where it writes. */
export interface CommandContext {
  cwd: string
  env: NodeJS.ProcessEnv
  terminal: Terminal
  /** Subscribes to Ctrl-C and SIGTERM while a command can stop cleanly; returns the unsubscribe. */
  onSignal?: (listener: (name: 'SIGINT' | 'SIGTERM') => void) => () => void
}

export const formatSeconds = (s: number) => `${s.toFixed(1)}s`

/** Pads every column but the last to its widest cell in terminal columns (CJK and emoji count 2), and puts `gap` spaces between columns. */
export function table(rows: readonly (readonly string[])[], gap = 2): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, stringWidth(cell))))
  const pad = (cell: string, i: number) => cell + ' '.repeat(widths[i]! - stringWidth(cell))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : pad(cell, i))).join(' '.repeat(gap)).trimEnd())
}

/** `text` on one line in at most `columns` terminal columns (CJK and emoji count 2): `clip` by display width. */
export const clipColumns = (text: string, columns: number): string => clip(text, columns, stringWidth)
