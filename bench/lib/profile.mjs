// Reads a V8 .cpuprofile (`node --cpu-prof`) and says where the time went: self time by
// function, and by package (what node_modules folder, or the plugin's dist, or Node itself).
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** URL prefix of this package's own built code, as profiles name it. */
export const DIST_URL = pathToFileURL(new URL('../../dist/', import.meta.url).pathname).href
/** Whether a profile frame is this package's own code. */
export const isOwnCode = (callFrame) => callFrame.url.startsWith(DIST_URL)

export function readProfile(dir) {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  return JSON.parse(readFileSync(join(dir, file), 'utf8'))
}

function packageOf(url) {
  if (!url) return '(native / GC / idle)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (url.startsWith(DIST_URL)) return 'unplugin-imagegen (dist)'
  if (url.startsWith('node:')) return 'node internals'
  return url.replace(/^file:\/\//, '').split('/').slice(-2).join('/')
}

/** Self time per function and per package, in ms, heaviest first; `(idle)` is left out of the shares. */
export function summarizeProfile(profile, { top = 12 } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map()
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i + 1] ?? 0
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + delta / 1000)
  }
  const fns = new Map()
  const pkgs = new Map()
  let total = 0
  let idle = 0
  for (const [id, ms] of self) {
    const { callFrame } = byId.get(id)
    if (callFrame.functionName === '(idle)') {
      idle += ms
      continue
    }
    total += ms
    const file = callFrame.url ? callFrame.url.split('/').slice(-1)[0] : ''
    const name = `${callFrame.functionName || '(anonymous)'}${file ? ` (${packageOf(callFrame.url)}: ${file}:${callFrame.lineNumber + 1})` : ''}`
    fns.set(name, (fns.get(name) ?? 0) + ms)
    const special = ['(garbage collector)', '(program)', '(root)']
    const pkg = callFrame.url ? packageOf(callFrame.url) : special.includes(callFrame.functionName) ? callFrame.functionName : 'native bindings (fs, crypto, …)'
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + ms)
  }
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, ms]) => ({ name, ms, share: ms / total }))
  return { totalMs: total, idleMs: idle, functions: sorted(fns), packages: sorted(pkgs) }
}

/** Inclusive time of every function whose name matches, summed over its call sites (not double-counting recursion). */
export function inclusive(profile, match) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map()
  for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000)
  let ms = 0
  for (const [id, t] of self) {
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      if (match(byId.get(cur).callFrame)) {
        ms += t
        break
      }
    }
  }
  return ms
}

export function profileMarkdown(summary) {
  const pct = (s) => `${(s * 100).toFixed(1)}%`
  const lines = [`CPU time sampled: ${summary.totalMs.toFixed(0)} ms (idle ${summary.idleMs.toFixed(0)} ms left out).`, '', 'By package (self time):', '']
  for (const p of summary.packages) lines.push(`- ${p.name}: ${p.ms.toFixed(0)} ms (${pct(p.share)})`)
  lines.push('', 'Heaviest functions (self time):', '')
  for (const f of summary.functions) lines.push(`- \`${f.name}\`: ${f.ms.toFixed(0)} ms (${pct(f.share)})`)
  return lines.join('\n')
}

/** Runs a child under `node --cpu-prof` and returns its profile. */
export async function profileChild(script, args, options = {}) {
  const { mkdtemp, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { runChild } = await import('./child.mjs')
  const dir = await mkdtemp(join(tmpdir(), 'imagegen-bench-prof-'))
  try {
    await runChild(script, args, { ...options, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] })
    return readProfile(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The `n` functions matching `filter` with the most inclusive time, by name. */
export function topInclusive(profile, filter, n) {
  const names = new Set(profile.nodes.filter((node) => filter(node.callFrame)).map((node) => node.callFrame.functionName))
  return [...names]
    .map((name) => ({ name, ms: inclusive(profile, (cf) => filter(cf) && cf.functionName === name) }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, n)
}
