// The `imagegen` command as a function: argv and an io in, an exit code out (bin.ts wires the process).
import { forTerminal, ImagegenError } from '../core/errors'
import { Project } from '../core/project'
import { flagOptions, resolveOptions } from '../options'
import { OPTION_FLAGS, parseInvocation, type Invocation } from './args'
import { generateCommand } from './commands/generate'
import { pruneCommand } from './commands/prune'
import { statusCommand } from './commands/status'
import { verifyCommand } from './commands/verify'
import { JSON_VERSION } from './json'
import { EXIT, type CommandContext, type ExitCode } from './terminal'

const COMMANDS = { generate: generateCommand, status: statusCommand, prune: pruneCommand, verify: verifyCommand }

export async function run(argv: readonly string[], ctx: CommandContext): Promise<ExitCode> {
  let invocation: Invocation | undefined
  try {
    invocation = parseInvocation(argv)
    if ('text' in invocation) {
      ;(invocation.usage ? ctx.terminal.err : ctx.terminal.out)(invocation.text)
      return invocation.usage ? EXIT.usage : EXIT.ok
    }
    // The root and options exactly as the plugin settles them, with the flags in the place of its options.
    const project = new Project(resolveOptions(flagOptions(invocation.flags, OPTION_FLAGS), { from: ctx.cwd, env: ctx.env }))
    return await COMMANDS[invocation.command](ctx, project, invocation)
  } catch (error) {
    // Bad input (arguments, config file, manifests) exits 2: fix it and run again.
    const code = error instanceof ImagegenError && ['USAGE', 'OPTIONS', 'MANIFEST'].includes(error.code) ? EXIT.usage : EXIT.incomplete
    const message = forTerminal(error)
    ctx.terminal.err(message)
    if (invocation && 'command' in invocation && invocation.flags.json === true) {
      ctx.terminal.out(JSON.stringify({ version: JSON_VERSION, command: invocation.command, ok: false, exitCode: code, error: message }, null, 2))
    }
    return code
  }
}
