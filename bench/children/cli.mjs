// Runs the package's own `imagegen` command (dist/cli.js) with the given arguments, and
// appends BENCH_RESULT { maxRSS, processMs, exitCode } once it exits.
import { writeSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
process.argv = [process.argv[0], cli, ...process.argv.slice(2)]
process.on('exit', (code) => {
  const result = { maxRSS: process.resourceUsage().maxRSS * 1024, processMs: performance.now(), exitCode: code }
  writeSync(1, `\nBENCH_RESULT ${JSON.stringify(result)}\n`)
  // the bench reads the command's JSON and its exit code from here, so the process itself succeeds
  process.exitCode = 0
})
await import(cli)
