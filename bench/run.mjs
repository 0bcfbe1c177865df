// `npm run bench`: the plugin's cost, side by side with what a user would otherwise do.
// Prints one Markdown table (median of several runs, with min and max) and records the run
// in BENCHMARKS.md with the machine it ran on. See BENCHMARKS.md for what each row measures.
//
//   npm run bench                      every section; records BENCHMARKS.md
//   npm run bench -- --only 1,4        some sections (1 warm build, 2 transforms, 3 cold generation and 5 memory, 4 planning); not recorded
//   npm run bench -- --runs 3          runs per measurement (default: 7 for 1, 5 for 4, 3 for 2 and 3); not recorded
//   npm run bench -- --no-record       print only
//   npm run bench -- --profile         CPU profiles for 1 and 4 even when their targets are met
//   npm run bench -- --keep            keep the temp folder with the projects
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { machine } from './lib/machine.mjs'
import { markdownTable } from './lib/stats.mjs'

const repo = fileURLToPath(new URL('../', import.meta.url))
const { values: flags } = parseArgs({
  options: {
    only: { type: 'string' },
    runs: { type: 'string' },
    'no-record': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
})
const only = flags.only ? new Set(flags.only.split(',').map((s) => s.trim())) : undefined
const runsFor = (fallback) => (flags.runs ? Number(flags.runs) : fallback)
const started = Date.now()
const log = (message) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`)

function newestMtime(dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs)
  }
  return newest
}

function buildIfNeeded() {
  const outputs = ['dist/index.js', 'dist/vite.js', 'dist/cli.js'].map((f) => join(repo, f))
  const stale =
    outputs.some((f) => !existsSync(f)) ||
    Math.max(newestMtime(join(repo, 'src')), statSync(join(repo, 'package.json')).mtimeMs, statSync(join(repo, 'tsup.config.ts')).mtimeMs) >
      Math.min(...outputs.map((f) => statSync(f).mtimeMs))
  if (!stale) return log('dist/ is up to date with src/')
  log('dist/ is older than src/: npm run build')
  const result = spawnSync('npm', ['run', 'build'], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] })
  if (result.status !== 0) throw new Error('npm run build failed')
}

if (!flags['no-build']) buildIfNeeded()
const workdir = mkdtempSync(join(tmpdir(), 'imagegen-bench-'))
log(`projects in ${workdir}`)
const sections = []
try {
  const wanted = (n) => !only || only.has(n)
  let pluginSite
  if (wanted('1') || wanted('2')) {
    const { setUpPluginSite } = await import('./sections/warm-build.mjs')
    log('setup: the 200-image site')
    pluginSite = await setUpPluginSite(workdir, log)
  }
  if (wanted('1')) {
    log('1. warm build overhead')
    const { warmBuild } = await import('./sections/warm-build.mjs')
    sections.push(await warmBuild({ workdir, runs: runsFor(7), log, pluginSite, profile: flags.profile }))
  }
  if (wanted('2')) {
    log('2. transforms against vite-imagetools')
    const { transforms } = await import('./sections/transforms.mjs')
    sections.push(await transforms({ workdir, runs: runsFor(3), log, pluginSite }))
  }
  if (wanted('3') || wanted('5')) {
    log('3. cold generation against the ideal, and 5. memory against the number in flight')
    const { coldGeneration } = await import('./sections/cold-generation.mjs')
    sections.push(await coldGeneration({ workdir, runs: runsFor(3), log }))
  }
  if (wanted('4')) {
    log('4. planning at scale')
    const { planning } = await import('./sections/planning.mjs')
    sections.push(await planning({ workdir, runs: runsFor(5), log, profile: flags.profile }))
  }
} finally {
  if (flags.keep) log(`kept ${workdir}`)
  else rmSync(workdir, { recursive: true, force: true })
}

const rows = sections.flatMap((s) => s.rows).sort((a, b) => Number(a[0]) - Number(b[0]))
const table = markdownTable(['#', 'measure', 'unplugin-imagegen', 'reference', 'ratio', 'target', ''], rows)
const details = sections.flatMap((s) => s.details).sort()
const m = machine()
const minutes = ((Date.now() - started) / 60000).toFixed(1)
const machineLine =
  `Node ${m.node}, ${m.cpu}, ${m.cores} cores, ${m.memory}, ${m.os}; ${m.date}. ` +
  `vite ${m.vite}, vite-imagetools ${m.viteImagetools}; sharp ${m.sharp} for the plugin, ${m.imagetoolsSharp} for vite-imagetools. The whole bench took ${minutes} min.`
const block = `${machineLine}\n\n${table}\n\n${details.join('\n\n')}\n`

process.stdout.write(`\n${block}`)
const complete = !only && !flags.runs
if (!flags['no-record'] && complete) {
  const file = join(repo, 'BENCHMARKS.md')
  const begin = '<!-- bench:begin (written by npm run bench) -->'
  const end = '<!-- bench:end -->'
  const text = existsSync(file) ? readFileSync(file, 'utf8') : `# Benchmarks\n\n${begin}\n${end}\n`
  const from = text.indexOf(begin)
  const to = text.indexOf(end)
  if (from < 0 || to < from) throw new Error(`BENCHMARKS.md has no ${begin} … ${end} block to replace`)
  writeFileSync(file, `${text.slice(0, from + begin.length)}\n${block}${text.slice(to)}`)
  log('recorded in BENCHMARKS.md')
} else {
  log('not recorded in BENCHMARKS.md (only a full run with the default runs is)')
}
