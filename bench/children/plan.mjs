// Section 4: load, validate, key and plan every manifest of a project whose images are all
// cached, through the package's pipeline (`openProject`), as a build's preflight or `imagegen status` does.
// argv: <root> <provider> [iterations]
// Prints BENCH_RESULT { importMs, iterations: [{ findMs, readMs, planMs, totalMs }], entries, cached, missing }
const [root, provider, iterationsArg = '2'] = process.argv.slice(2)
const importStarted = performance.now()
const { openProject } = await import('unplugin-imagegen')
const importMs = performance.now() - importStarted

const iterations = []
let last
for (let i = 0; i < Number(iterationsArg); i++) {
  const t0 = performance.now()
  // a fresh project each time, as a new process would make it (the parsed store on disk stays warm)
  const project = openProject({ provider }, { from: root, env: {} })
  const files = await project.findManifests()
  const t1 = performance.now()
  const { entries, problems } = await project.readAll(files)
  if (problems.length > 0) throw problems[0]
  const t2 = performance.now()
  const plan = project.plan(entries)
  const t3 = performance.now()
  iterations.push({ findMs: t1 - t0, readMs: t2 - t1, planMs: t3 - t2, totalMs: t3 - t0 })
  last = { files: files.length, entries: entries.length, images: plan.images.length, cached: plan.cached.length, missing: plan.missing.length }
}
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ importMs, iterations, ...last, maxRSS: process.resourceUsage().maxRSS * 1024 })}\n`)
