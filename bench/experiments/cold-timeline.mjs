// Where a round of section 3 goes, seen from the server: for every prediction, when its first
// poll and its download arrived after its submit, and how long after a download the next
// submit came (the slot's turnover). Runs `imagegen generate` once, as section 3 does.
//
//   node bench/experiments/cold-timeline.mjs [pollIntervalMs=1520] [latencyMs=1500] [concurrency=8] [images=64]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { loadAtlasServer } from '../lib/atlas-server.mjs'
import { childScript, runChild } from '../lib/child.mjs'
import { collection, writeFiles } from '../lib/projects.mjs'
import { summary } from '../lib/stats.mjs'

const pollIntervalMs = Number(process.argv[2] ?? 1520)
const latencyMs = Number(process.argv[3] ?? 1500)
const concurrency = Number(process.argv[4] ?? 8)
const N = Number(process.argv[5] ?? 64)
const { startAtlasServer, seededRandom } = await loadAtlasServer()
const random = seededRandom(42)
const raw = Buffer.alloc(1024 * 1024 * 3)
for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(random() * 256)
const png = await sharp(raw, { raw: { width: 1024, height: 1024, channels: 3 } }).blur(6).png().toBuffer()

const events = []
const server = await startAtlasServer({
  latencyMs,
  download: () => ({ body: png, contentType: 'image/png' }),
  intercept: ({ method, path }) => {
    events.push({ at: performance.now(), method, path })
    return 'continue'
  },
})
const root = mkdtempSync(join(tmpdir(), 'imagegen-timeline-'))
try {
  writeFiles(root, {
    'src/gen.images.yaml': collection(100, N),
    'imagegen.config.json': JSON.stringify({ provider: 'atlas', baseURL: server.url, maxNewImages: N, pollIntervalMs }),
  })
  const run = await runChild(childScript('cli.mjs'), ['generate', '--json', '--concurrency', String(concurrency), '--max-new', String(N)], {
    cwd: root,
    env: { ATLASCLOUD_API_KEY: 'test-key', IMAGEGEN_OFFLINE: '', ATLASCLOUD_BASE_URL: '' },
  })
  const predictions = new Map()
  let submitted = 0
  for (const e of events) {
    if (e.method === 'POST') predictions.set(`pred_${++submitted}`, { submit: e.at, polls: [] })
    const id = /pred_\d+/.exec(e.path)?.[0]
    if (!id || !predictions.has(id)) continue
    if (e.path.startsWith('/outputs/')) predictions.get(id).download = e.at
    else predictions.get(id).polls.push(e.at)
  }
  const list = [...predictions.values()]
  // a slot's next submit: the first submit after this download that no earlier download has claimed
  const downloads = list.map((p) => p.download).sort((a, b) => a - b)
  const submits = list.map((p) => p.submit).sort((a, b) => a - b).slice(concurrency)
  const turnover = submits.map((s, i) => s - downloads[i])
  const show = (label, values) => {
    const s = summary(values)
    console.log(`${label.padEnd(44)} median ${s.median.toFixed(0).padStart(5)} ms  (${s.min.toFixed(0)}–${s.max.toFixed(0)})`)
  }
  console.log(`imagegen generate: ${JSON.parse(run.stdout).seconds} s for ${N} images, concurrency ${concurrency}, latency ${latencyMs} ms, pollIntervalMs ${pollIntervalMs}`)
  show('submit → first poll', list.map((p) => p.polls[0] - p.submit))
  show('submit → last poll (the one that saw it done)', list.map((p) => p.polls.at(-1) - p.submit))
  show('last poll → download request', list.map((p) => p.download - p.polls.at(-1)))
  show('download request → the slot\'s next submit', turnover)
} finally {
  await server.close()
  rmSync(root, { recursive: true, force: true })
}
