#!/usr/bin/env node
// The `imagegen` executable: the process around `run()`.
import pc from 'picocolors'
import { run } from './run'
import { EXIT, printable } from './terminal'

// A reader that closes the pipe early (`imagegen status | head`) is not an error of ours:
// the command still finishes and exits with its own code.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error
})

const code = await run(process.argv.slice(2), {
  cwd: process.cwd(), env: process.env,
  terminal: {
    out: (line) => void process.stdout.write(`${printable(line)}\n`),
    err: (line) => void process.stderr.write(`${printable(line)}\n`),
    stderr: process.stderr,
    interactive: process.stderr.isTTY === true && process.env.TERM !== 'dumb',
    // picocolors' own rule: off with NO_COLOR (whatever else is set), on with FORCE_COLOR, on a TTY or in CI
    color: pc.isColorSupported,
  },
  // The first Ctrl-C (or SIGTERM) stops the command cleanly; a second one quits at once.
  onSignal(listener) {
    let seen = false
    const handler = (name: NodeJS.Signals) => {
      if (seen) process.exit(name === 'SIGINT' ? EXIT.interrupted : EXIT.terminated)
      seen = true
      listener(name as 'SIGINT' | 'SIGTERM')
    }
    process.on('SIGINT', handler).on('SIGTERM', handler)
    return () => void process.off('SIGINT', handler).off('SIGTERM', handler)
  },
})
// Exit once stdout is flushed: a pipe reader must get the whole --json document, and idle
// keep-alive sockets must not hold the process open.
process.stdout.write('', () => process.exit(code))
