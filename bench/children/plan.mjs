// Section 4: load, validate, key and plan every manifest of a project whose images are all
// cached, with the package's core API, as a build's preflight or `imagegen status` does.
// argv: <root> <provider> [iterations]
// Prints BENCH_RESULT { importMs, iterations: [{ readMs, parseMs, keyMs, planMs, totalMs }], entries, cached, missing }
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'

const [root, provider, iterationsArg = '2'] = process.argv.slice(2)
const importStarted = performance.now()
const { ImageCache, keyEntries, parseManifest, planImages } = await import('unplugin-imagegen')
const importMs = performance.now() - importStarted

async function manifestFiles(dir) {
  const found = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && /\.images\.ya?ml$/.test(entry.name)) found.push(join(entry.parentPath, entry.name))
  }
  return found.sort()
}

const iterations = []
let last
for (let i = 0; i < Number(iterationsArg); i++) {
  const t0 = performance.now()
  const files = await manifestFiles(join(root, 'src'))
  const sources = await Promise.all(files.map((file) => readFile(file)))
  const t1 = performance.now()
  const manifests = files.map((file, j) => parseManifest(sources[j], relative(root, file)))
  const t2 = performance.now()
  const keyed = await Promise.all(manifests.map((manifest, j) => keyEntries(manifest, { manifestPath: files[j], root, provider })))
  const entries = keyed.flat()
  const t3 = performance.now()
  const plan = await planImages(entries, new ImageCache(join(root, '.imagegen')))
  const t4 = performance.now()
  iterations.push({ readMs: t1 - t0, parseMs: t2 - t1, keyMs: t3 - t2, planMs: t4 - t3, totalMs: t4 - t0 })
  last = { files: files.length, entries: entries.length, images: plan.images.length, cached: plan.cached.length, missing: plan.missing.length }
}
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ importMs, iterations, ...last, maxRSS: process.resourceUsage().maxRSS * 1024 })}\n`)
