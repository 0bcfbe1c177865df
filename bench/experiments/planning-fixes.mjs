// What the fixes suggested in BENCHMARKS.md (section 4) would save, measured without changing
// the package: the same 10,000 record reads and stats done three ways, and the floor of
// parsing the same YAML with the `yaml` library alone.
//
//   npm run bench -- --only 4 --keep        (prints the temp folder it kept)
//   node bench/experiments/planning-fixes.mjs /tmp/imagegen-bench-XXXX/plan
import fs from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { parseDocument, LineCounter } from 'yaml'

const root = process.argv[2]
if (!root) throw new Error('usage: node bench/experiments/planning-fixes.mjs <the kept plan project>')
const imagesDir = join(root, '.imagegen/images')
const keys = (await readdir(imagesDir)).filter((n) => /^[0-9a-f]{64}\.json$/.test(n)).map((n) => n.slice(0, 64))

async function time(label, work) {
  const started = performance.now()
  const found = await work()
  console.log(`${label.padEnd(58)} ${(performance.now() - started).toFixed(0).padStart(6)} ms  (${found} found)`)
}

const check = (record, size) => (size === record.size ? 1 : 0)
const ways = {
  'fs/promises, all at once (as ImageCache.lookup is called)': async () => {
    const hits = await Promise.all(keys.map(async (key) => {
      const record = JSON.parse(await readFile(join(imagesDir, `${key}.json`), 'utf8'))
      return check(record, (await stat(join(imagesDir, record.file))).size)
    }))
    return hits.reduce((a, b) => a + b, 0)
  },
  'fs/promises, 64 at a time': async () => {
    let next = 0
    let found = 0
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < keys.length) {
        const key = keys[next++]
        const record = JSON.parse(await readFile(join(imagesDir, `${key}.json`), 'utf8'))
        const { size } = await stat(join(imagesDir, record.file))
        found += check(record, size)
      }
    }))
    return found
  },
  'readFileSync + statSync, one after another': async () => {
    let found = 0
    for (const key of keys) {
      const record = JSON.parse(fs.readFileSync(join(imagesDir, `${key}.json`), 'utf8'))
      found += check(record, fs.statSync(join(imagesDir, record.file), { throwIfNoEntry: false })?.size)
    }
    return found
  },
}
// twice each, in turn: the first round pays for the JIT and the page cache
for (let round = 1; round <= 2; round++) {
  console.log(`round ${round}: ${keys.length} record reads and stats`)
  for (const [label, work] of Object.entries(ways)) await time(label, work)
}

const files = fs.readdirSync(join(root, 'src'), { recursive: true }).filter((f) => f.endsWith('.images.yaml')).map((f) => fs.readFileSync(join(root, 'src', f), 'utf8'))
const bytes = files.reduce((n, f) => n + f.length, 0)
for (let round = 1; round <= 2; round++) {
  await time(`yaml parseDocument of ${files.length} manifests (${(bytes / 2 ** 20).toFixed(1)} MiB), round ${round}`, () => {
    for (const text of files) parseDocument(text, { lineCounter: new LineCounter(), uniqueKeys: true }).toJS()
    return files.length
  })
}
