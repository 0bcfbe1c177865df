// Every measured thing runs in a fresh Node process: its time starts at the process's
// own start, and its peak memory is its own (`process.resourceUsage().maxRSS`).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const RESULT_MARK = 'BENCH_RESULT '
export const childScript = (name) => fileURLToPath(new URL(`../children/${name}`, import.meta.url))

/**
 * Runs `node script …args` and returns the JSON the child printed after `BENCH_RESULT `
 * (its last such line), with stdout, stderr and the wall time seen from here.
 */
export function runChild(script, args = [], { cwd, env, nodeArgs = [], timeoutMs = 600_000 } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const wallMs = performance.now() - started
      const line = stdout.split('\n').reverse().find((l) => l.startsWith(RESULT_MARK))
      const result = line ? JSON.parse(line.slice(RESULT_MARK.length)) : undefined
      const output = line ? stdout.slice(0, stdout.lastIndexOf(RESULT_MARK)) : stdout
      if (!result || code !== 0) {
        const error = new Error(`${script} ${args.join(' ')} exited with ${signal ?? code}\n${stderr.slice(-4000)}\n${stdout.slice(-2000)}`)
        error.result = result
        error.code = code
        error.output = output
        return reject(error)
      }
      resolve({ result, stdout: output, stderr, wallMs, code })
    })
  })
}

/** Runs `task` `runs` times, alternating with the other tasks of the same round, so drift hits them alike. */
export async function rounds(runs, tasks, onRound = () => {}) {
  const results = Object.fromEntries(Object.keys(tasks).map((k) => [k, []]))
  for (let i = 0; i < runs; i++) {
    for (const [name, task] of Object.entries(tasks)) results[name].push(await task(i))
    onRound(i)
  }
  return results
}
