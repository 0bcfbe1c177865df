import type { Terminal } from '../terminal'

/** What a command gets from the process: where it runs, its environment, where it writes. */
export interface CommandContext {
  cwd: string
  env: NodeJS.ProcessEnv
  terminal: Terminal
}
