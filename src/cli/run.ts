// The `imagegen` command as a function: argv and an io in, an exit code out (bin.ts wires the process).
import { version } from '../../package.json'
import { forTerminal } from '../core/errors'
import { Project } from '../core/project'
import { flagOptions, resolveOptions } from '../options'
import { OPTION_FLAGS, parseInvocation, type Invocation } from './args'
import { generateCommand } from './commands/generate'
import { pruneCommand } from './commands/prune'
import { statusCommand } from './commands/status'
import { verifyCommand } from './commands/verify'
import { JSON_VERSION, type ErrorJson } from './json'
import { EXIT, exitCodeOf, type CommandContext, type ExitCode } from './terminal'

export type { CommandContext } from './terminal'

export async function run(argv: readonly string[], ctx: CommandContext): Promise<ExitCode> {
  let invocation: Invocation | undefined
  try {
    invocation = parseInvocation(argv)
    if (invocation.kind === 'help') {
      ;(invocation.usage ? ctx.terminal.err : ctx.terminal.out)(invocation.text)
      return invocation.usage ? EXIT.usage : EXIT.ok
    }
    if (invocation.kind === 'version') {
      ctx.terminal.out(version)
      return EXIT.ok
    }
    const { command, paths, flags } = invocation
    // The root and options exactly as the plugin settles them, with the flags in the place of its options.
    const project = new Project(resolveOptions(flagOptions(flags, OPTION_FLAGS), { from: ctx.cwd, env: ctx.env }))
    switch (command) {
      case 'generate':
        return await generateCommand(ctx, project, paths, flags)
      case 'status':
        return await statusCommand(ctx, project, paths, flags)
      case 'prune':
        return await pruneCommand(ctx, project, flags)
      case 'verify':
        return await verifyCommand(ctx, project)
    }
  } catch (error) {
    const code = exitCodeOf(error)
    const message = forTerminal(error)
    ctx.terminal.err(message)
    if (invocation?.kind === 'command' && invocation.flags.json === true) {
      const result: ErrorJson = { version: JSON_VERSION, command: invocation.command, ok: false, exitCode: code, error: message }
      ctx.terminal.out(JSON.stringify(result, null, 2))
    }
    return code
  }
}
