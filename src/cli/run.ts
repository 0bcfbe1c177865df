// The `imagegen` command as a function: argv and an io in, an exit code out (bin.ts wires the process).
import { forTerminal, ImagegenError } from '../core/errors'
import { Project } from '../core/project'
import { flagOptions, resolveOptions } from '../options'
import { COMMANDS as NAMES, OPTION_FLAGS, parseInvocation } from './args'
import { generateCommand } from './commands/generate'
import { pickCommand } from './commands/pick'
import { pruneCommand } from './commands/prune'
import { statusCommand } from './commands/status'
import { variantsCommand } from './commands/variants'
import { verifyCommand } from './commands/verify'
import { JSON_VERSION } from './json'
import { EXIT, printError, type CommandContext, type ExitCode } from './terminal'

const COMMANDS = { generate: generateCommand, status: statusCommand, prune: pruneCommand, verify: verifyCommand, variants: variantsCommand, pick: pickCommand }

export async function run(argv: readonly string[], ctx: CommandContext): Promise<ExitCode> {
  // Asked for before the arguments are understood, so that a bad one still gets its JSON document.
  const words = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv
  const json = words.includes('--json')
  try {
    const invocation = parseInvocation(argv)
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
    printError(ctx.terminal, message)
    if (json) {
      const command = words.find((word): word is keyof typeof COMMANDS => (NAMES as string[]).includes(word)) ?? null
      ctx.terminal.out(JSON.stringify({ version: JSON_VERSION, command, ok: false, exitCode: code, error: message }, null, 2))
    }
    return code
  }
}
