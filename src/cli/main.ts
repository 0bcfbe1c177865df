// The `imagegen` command: reads argv, runs one command, exits with its code.
import { version } from '../../package.json'
import { ImagegenError } from '../core/errors'
import { parseInvocation, type Invocation } from './args'
import type { CommandContext } from './commands/context'
import { generateCommand } from './commands/generate'
import { pruneCommand } from './commands/prune'
import { statusCommand } from './commands/status'
import { verifyCommand } from './commands/verify'
import { JSON_VERSION, type ErrorJson } from './json'
import { CliError, EXIT, processTerminal, type ExitCode } from './terminal'

export async function run(argv: readonly string[], ctx: CommandContext): Promise<ExitCode> {
  let invocation: Invocation | undefined
  try {
    invocation = parseInvocation(argv)
    switch (invocation.kind) {
      case 'help':
        if (!invocation.usage) {
          ctx.terminal.out(invocation.text)
          return EXIT.ok
        }
        ctx.terminal.err(invocation.text)
        return EXIT.usage
      case 'version':
        ctx.terminal.out(version)
        return EXIT.ok
    }
    const { command, paths, flags } = invocation
    switch (command) {
      case 'generate':
        return await generateCommand(ctx, paths, flags)
      case 'status':
        return await statusCommand(ctx, paths, flags)
      case 'prune':
        return await pruneCommand(ctx, flags)
      case 'verify':
        return await verifyCommand(ctx)
    }
  } catch (error) {
    const code = error instanceof CliError ? error.exitCode : EXIT.incomplete
    const message =
      error instanceof ImagegenError ? error.message : `[imagegen] unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`
    ctx.terminal.err(message)
    if (invocation?.kind === 'command' && invocation.flags.json === true) {
      const result: ErrorJson = { version: JSON_VERSION, command: invocation.command, ok: false, exitCode: code, error: message }
      ctx.terminal.out(JSON.stringify(result, null, 2))
    }
    return code
  }
}

// A reader that closes the pipe early (`imagegen status | head`) is not an error of ours:
// the command still finishes and exits with its own code.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error
})
const code = await run(process.argv.slice(2), { cwd: process.cwd(), env: process.env, terminal: processTerminal() })
// Exit once stdout is flushed: a pipe reader must get the whole --json document, and idle
// keep-alive sockets must not hold the process open.
process.stdout.write('', () => process.exit(code))
