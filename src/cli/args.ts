import { parseArgs, type ParseArgsConfig } from 'node:util'
import { version } from '../../package.json'
import { didYouMean } from '../core/did-you-mean'
import type { Options } from '../options'
import { table, usageError } from './terminal'

/**
 * A command's line in the main help, the text of its own help, and its flags besides `--help` (`--max-new N` takes a
 * value; `--force <…>…` takes one each time it is given).
 */
type CommandSpec = { usage: string; summary: string; about: string; flags: Record<string, string>; operands?: string[] }

const COMMAND_SPECS = {
  generate: {
    usage: 'generate [paths…]', summary: 'generate every missing image of the manifests under the paths',
    about: `Generates every image of the manifests under the paths that is not in the cache yet,
after printing the plan (cached, to generate, within the bill guard or not).

Ctrl-C stops cleanly: images that arrived stay cached, and predictions already submitted
are resumed by the next run without being paid again.`,
    flags: {
      '--dry-run': 'print the plan and the images it would generate, then stop',
      '--json': 'print one JSON result on stdout instead of progress',
      '--concurrency N': 'predictions at once (default: concurrency, 4)',
      '--max-new N': 'allow up to N new images in this run (default: maxNewImages, 25)',
      '--force <manifest>#<entry>…': 'pay again for an entry whose cached image is damaged (never done without it); repeatable',
    },
  },
  status: {
    usage: 'status [paths…]', summary: 'show each entry as cached or missing; exit 1 when any is missing',
    about: `Prints one line per manifest entry — manifest, name, key prefix, cached or missing —
and a summary. Exits 1 when any image is missing: the CI guard.`,
    flags: { '--json': 'print one JSON result on stdout' },
  },
  prune: {
    usage: 'prune [--dry-run]', summary: 'delete cache entries that no manifest uses',
    about: `Deletes the cache entries (image and record) that no manifest of the project uses.
Entries made by another provider than the configured one are kept unless --any-provider.`,
    flags: {
      '--dry-run': 'list the entries and their sizes, delete nothing',
      '--any-provider': 'also delete unused entries made by another provider',
      '--json': 'print one JSON result on stdout',
    },
  },
  verify: {
    usage: 'verify', summary: 're-hash every cached image against its record; exit 1 on damage',
    about: `Re-hashes every cached image against the SHA-256 and size in its record.
Exits 1 and lists the damaged entries when any file differs.`,
    flags: { '--json': 'print one JSON result on stdout' },
  },
  variants: {
    usage: 'variants <manifest>[#<entry>]', summary: 'make N candidates per entry that differ only in seed, and a contact sheet',
    operands: ['<manifest>[#<entry>]'],
    about: `Makes N candidates of the entry (every entry of the manifest when #<entry> is left out;
a single-image manifest has no #<entry>) that differ only in seed. Candidate 1 is the image
the entry uses now; the others' seeds derive from the spec, so running it again makes nothing
new. Candidates are cached like any image and count against the bill guard.
Prints one line per candidate and writes a contact sheet (HTML) to the derived cache;
pin the one you like with \`imagegen pick <manifest>#<entry> <seed>\`.`,
    flags: {
      '--count N': 'candidates per entry, the current image included, 1–64 (default 4)',
      '--dry-run': 'print the candidates and what would be generated, then stop',
      '--json': 'print one JSON result on stdout',
      '--concurrency N': 'predictions at once (default: concurrency, 4)',
      '--max-new N': 'allow up to N new images in this run (default: maxNewImages, 25)',
    },
  },
  pick: {
    usage: 'pick <manifest>[#<entry>] <seed>', summary: 'write `seed: <seed>` into a manifest entry, keeping its comments',
    operands: ['<manifest>[#<entry>]', '<seed>'],
    about: `Writes \`seed: <seed>\` into the entry (the manifest alone for a single image), keeping
the file's comments, order and formatting, and prints the old and the new seed.
A seed whose image is not cached yet is allowed: the next build or \`imagegen generate\` makes it.`,
    flags: { '--json': 'print one JSON result on stdout' },
  },
} satisfies Record<string, CommandSpec>

export type CommandName = keyof typeof COMMAND_SPECS
export const COMMANDS = Object.keys(COMMAND_SPECS) as CommandName[]
const SPECS: CommandSpec[] = Object.values(COMMAND_SPECS)

/** The flags every command takes (as the tables show them, e.g. `--json`): they may also come before the command. */
const GLOBAL_FLAGS = Object.keys(SPECS[0]!.flags).filter((flag) => SPECS.every((spec) => flag in spec.flags))

/** Flags that set an option, by the option they set (checked by the options' own schema). */
export const OPTION_FLAGS: Record<string, keyof Options> = { concurrency: 'concurrency', 'max-new': 'maxNewImages' }

const list = (rows: string[][], gap: number) => table(rows, gap).map((line) => `  ${line}`).join('\n')

const HELP = `imagegen — generate the images of *.images.yaml manifests (FLUX.1 [schnell] on Atlas Cloud)

Usage:
${list(Object.values(COMMAND_SPECS).map(({ usage, summary }) => [`imagegen ${usage}`, summary]), 2)}

Paths default to the current folder; node_modules, .git and build output are skipped.
Run \`imagegen <command> --help\` for a command's flags.

Options:
${list([...GLOBAL_FLAGS.map((flag) => [flag, `${SPECS.at(-1)!.flags[flag]} (any command)`]), ['-h, --help', 'show this help'], ['-v, --version', 'print the version']], 3)}

Configuration: imagegen.config.json at the project root (the same file the bundler plugin
reads). ATLASCLOUD_API_KEY holds the key, ATLASCLOUD_BASE_URL overrides the endpoint,
IMAGEGEN_OFFLINE=1 forbids the network.

Exit codes: 0 ok, 1 something missing, failed or damaged, 2 bad arguments, config or
manifests, 130/143 stopped by SIGINT/SIGTERM.`

function commandHelp({ usage, about, flags }: CommandSpec): string {
  const options = list([...Object.entries(flags), ['-h, --help', 'show this help']], 3)
  return `Usage: imagegen ${usage}${Object.keys(flags).length > 0 ? ' [options]' : ''}\n\n${about}\n\nOptions:\n${options}`
}

export type Command = { command: CommandName; paths: string[]; flags: Record<string, unknown> }

/** A command to run, or a text to print: on stderr with exit 2 when `usage` (no command was given). */
export type Invocation = Command | { text: string; usage?: boolean }

/** Reads argv (without `node` and the script). Throws a usage error (exit 2) on anything unknown. */
export function parseInvocation(argv: readonly string[]): Invocation {
  // Flags before the command: help, version, or flags every command takes, which are passed on to it.
  const leading: string[] = []
  let at = 0
  for (; at < argv.length && argv[at]!.startsWith('-') && argv[at] !== '--'; at++) {
    const flag = argv[at]!
    if (['-h', '--help'].includes(flag)) return { text: HELP }
    if (['-v', '--version'].includes(flag)) return { text: version }
    const shown = GLOBAL_FLAGS.find((name) => name.split(' ')[0] === flag.replace(/=.*$/, ''))
    if (!shown) {
      const names = ['--help', '--version', ...GLOBAL_FLAGS.map((name) => name.split(' ')[0]!)]
      const guess = didYouMean(flag.replace(/=.*$/, ''), names)
      throw usageError(`unknown option \`${flag}\` before the command${guess ? `: did you mean \`${guess}\`?` : `; the options there are ${names.join(', ')}`}`)
    }
    leading.push(flag)
    // a flag that takes a value takes the next word, unless given as `--flag=value`
    if (shown.includes(' ') && !flag.includes('=') && at + 1 < argv.length) leading.push(argv[++at]!)
  }
  const [first, ...others] = argv.slice(at)
  const rest = [...leading, ...others]
  if (first === undefined && leading.length > 0) throw usageError(`no command given; the commands are ${COMMANDS.join(', ')}`)
  if (first === undefined) return { text: HELP, usage: true }
  if (first === 'help') return { text: HELP }
  if (first === 'version') return { text: version }
  const command = COMMANDS.find((name) => name === first)
  if (!command) {
    const guess = first.startsWith('-') ? undefined : didYouMean(first, COMMANDS)
    throw usageError(`unknown command \`${first}\`${guess ? `: did you mean \`${guess}\`?` : `; the commands are ${COMMANDS.join(', ')}`}`)
  }
  const spec: CommandSpec = COMMAND_SPECS[command]
  const flags: NonNullable<ParseArgsConfig['options']> = {}
  for (const shown of Object.keys(spec.flags)) flags[shown.split(' ')[0]!.slice(2)] = { type: shown.includes(' ') ? 'string' : 'boolean', multiple: shown.endsWith('…') }
  flags.help = { type: 'boolean', short: 'h' }
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: flags, allowPositionals: true, strict: true })
  } catch (error) {
    const { code, message } = error as Error & { code?: string }
    const names = Object.keys(flags).map((name) => `--${name}`)
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec(message)?.[1] ?? ''
      const guess = didYouMean(flag.replace(/=.*$/, ''), names)
      const hint = guess ? `: did you mean \`${guess}\`?` : `; its options are ${names.join(', ')}`
      throw usageError(`unknown option \`${flag}\` for \`imagegen ${command}\`${hint}`)
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const flag = /--([a-z-]+)/.exec(message)?.[0] ?? 'an option'
      const shown = Object.keys(spec.flags).find((name) => name.startsWith(`${flag} `))
      throw usageError(`\`${flag}\` ${shown ? `needs a value: \`${shown.replace('…', '')}\`` : 'takes no value'}`)
    }
    throw usageError(message)
  }
  if (parsed.values.help) return { text: commandHelp(spec) }
  const operands = spec.operands
  if (operands && parsed.positionals.length !== operands.length) {
    const got = parsed.positionals.length === 0 ? 'nothing' : parsed.positionals.map((p) => `\`${p}\``).join(' ')
    throw usageError(`\`imagegen ${command}\` takes ${operands.join(' ')} (got ${got})`)
  }
  if (!operands && !spec.usage.includes('[paths…]') && parsed.positionals.length > 0) {
    throw usageError(`\`imagegen ${command}\` takes no paths (got ${parsed.positionals.map((p) => `\`${p}\``).join(', ')}): it always looks at the whole project`)
  }
  return { command, paths: parsed.positionals, flags: parsed.values }
}
