// 3. Cold generation against the ideal, and 5. memory against the number in flight.
//
// The tests' loopback Atlas Cloud answers every prediction `latencyMs` after its submit and
// serves a 1024×1024 PNG of 1.3 MB (blurred noise: the size of a FLUX.1 [schnell] output). The package's
// own `imagegen generate --json` runs the real Scheduler and Atlas provider: the provider is
// not exported from the package root, so it is configured as a user would, through
// imagegen.config.json (no `pollIntervalMs`: the measured rows run the default schedule, which
// learns the service's time), ATLASCLOUD_BASE_URL and ATLASCLOUD_API_KEY. The time is the
// command's own `seconds` (from the first submit to the last image committed), so process
// start-up and planning are not in it.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { loadAtlasServer } from '../lib/atlas-server.mjs'
import { childScript, runChild } from '../lib/child.mjs'
import { collection, writeFiles } from '../lib/projects.mjs'
import { cell, mebibytes, seconds, summary, verdict } from '../lib/stats.mjs'

export const N = 64
export const CONCURRENCY = 8
/** FLUX.1 [schnell] takes a second or two; 1.5 s keeps a run to ~12 s. */
export const LATENCY_MS = 1500
/** A hand-tuned fixed schedule, for comparison: its first poll lands 20 ms after the image is ready. */
export const POLL_MS = 1520
/** The fixed schedule that was the default before the learned one (polls at 1, 2.5, 4.75 s …). */
const OLD_DEFAULT_POLL_MS = 1000
/** The provider page's loop polls every 2 s. */
const NAIVE_POLL_MS = 2000
/** The naive loop is run at 1/10 of the time scale, and its time multiplied back. */
const NAIVE_SCALE = 10
const MEMORY_CONCURRENCY = [1, 4, 8, 16]
const TARGET = 1.1

const signed = (bytes) => `${bytes < 0 ? '−' : '+'}${mebibytes(Math.abs(bytes))}`

/** When the first poll that finds an image of `latencyMs` done lands with `pollIntervalMs: first`: it polls after `first`, then ×1.5 up to 5 s (src/prediction/runtime.ts). */
export function firstPollAfter(latencyMs, first, cap = 5000) {
  let at = 0
  let wait = first
  for (;;) {
    at += wait
    if (at >= latencyMs) return at
    wait = Math.min(wait * 1.5, cap)
  }
}

async function realisticPng() {
  const { seededRandom } = await loadAtlasServer()
  const random = seededRandom(42)
  const raw = Buffer.alloc(1024 * 1024 * 3)
  for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(random() * 256)
  return sharp(raw, { raw: { width: 1024, height: 1024, channels: 3 } }).blur(6).png().toBuffer()
}

export async function coldGeneration({ workdir, runs, log }) {
  const { startAtlasServer } = await loadAtlasServer()
  const png = await realisticPng()
  // the server counts predictions running (submitted, not yet reported over): `maxInFlight`
  const server = await startAtlasServer({
    latencyMs: LATENCY_MS,
    download: () => ({ body: png, contentType: 'image/png' }),
  })
  const root = join(workdir, 'cold')
  const config = (pollIntervalMs) => JSON.stringify({ provider: 'atlas', maxNewImages: N, ...(pollIntervalMs !== null && { pollIntervalMs }) })
  writeFiles(root, { 'src/gen.images.yaml': collection(100, N) })
  const env = { ATLASCLOUD_API_KEY: server.options.apiKey ?? 'test-key', IMAGEGEN_OFFLINE: '', ATLASCLOUD_BASE_URL: server.url }

  const generate = async (concurrency, pollIntervalMs) => {
    rmSync(join(root, '.imagegen'), { recursive: true, force: true })
    writeFiles(root, { 'imagegen.config.json': config(pollIntervalMs) })
    server.reset()
    const run = await runChild(childScript('cli.mjs'), ['generate', '--json', '--concurrency', String(concurrency), '--max-new', String(N)], { cwd: root, env })
    const json = JSON.parse(run.stdout)
    if (run.result.exitCode !== 0 || json.summary?.generated !== N) throw new Error(`imagegen generate: exit ${run.result.exitCode}, ${json.summary?.generated} generated: ${JSON.stringify(json.error ?? '')}`)
    return { ms: json.seconds * 1000, maxRSS: run.result.maxRSS, maxInFlight: server.maxInFlight, submits: server.submits.length, polls: server.polls }
  }

  try {
    // interleaved, so that the machine's noise falls on each schedule alike
    log(`  ${runs} cold runs each: N=${N}, concurrency ${CONCURRENCY}, latency ${LATENCY_MS} ms; default options and pollIntervalMs ${POLL_MS} (and once pollIntervalMs ${OLD_DEFAULT_POLL_MS})`)
    const main = []
    const tuned = []
    const oldDefault = []
    for (let i = 0; i < runs; i++) {
      main.push(await generate(CONCURRENCY, null))
      tuned.push(await generate(CONCURRENCY, POLL_MS))
      // poll-bound and far from the target: once is enough
      if (i === 0) oldDefault.push(await generate(CONCURRENCY, OLD_DEFAULT_POLL_MS))
    }

    log(`  the naive loop at 1/${NAIVE_SCALE} time scale (latency ${LATENCY_MS / NAIVE_SCALE} ms, a poll every ${NAIVE_POLL_MS / NAIVE_SCALE} ms)`)
    server.options.latencyMs = LATENCY_MS / NAIVE_SCALE
    const naive = await runChild(childScript('naive-loop.mjs'), [server.url, env.ATLASCLOUD_API_KEY, String(N), String(NAIVE_POLL_MS / NAIVE_SCALE), join(workdir, 'naive-out')])
    server.options.latencyMs = LATENCY_MS

    const memory = new Map([[CONCURRENCY, main]])
    for (const c of MEMORY_CONCURRENCY.filter((c) => c !== CONCURRENCY)) {
      log(`  memory: one cold run at concurrency ${c}`)
      memory.set(c, [await generate(c, null)])
    }
    log(`  memory: ${runs} runs with everything cached (nothing in flight)`)
    const idleRuns = []
    for (let i = 0; i < runs; i++) idleRuns.push((await runChild(childScript('cli.mjs'), ['generate', '--json'], { cwd: root, env })).result)
    const idle = summary(idleRuns.map((r) => r.maxRSS))

    const rounds = Math.ceil(N / CONCURRENCY)
    const ideal = rounds * LATENCY_MS
    const tunedBound = rounds * firstPollAfter(LATENCY_MS, POLL_MS)
    const naiveAnalytic = N * Math.ceil(LATENCY_MS / NAIVE_POLL_MS) * NAIVE_POLL_MS
    const naiveMeasured = naive.result.ms * NAIVE_SCALE
    const wall = summary(main.map((r) => r.ms))
    const tunedWall = summary(tuned.map((r) => r.ms))
    const oldWall = summary(oldDefault.map((r) => r.ms))
    const oldBound = rounds * firstPollAfter(LATENCY_MS, OLD_DEFAULT_POLL_MS)
    const pollsPer = (runsOf) => (summary(runsOf.map((r) => r.polls)).median / N).toFixed(2)
    const rows = [
      ['3', `cold generation, N=${N}, concurrency ${CONCURRENCY}, latency L=${LATENCY_MS / 1000} s, default options (${pollsPer(main)} polls an image): wall time`, cell(wall, seconds), `${seconds(ideal)} ideal ⌈N/c⌉·L`, `**${(wall.median / ideal).toFixed(2)}**`, `≤ ${TARGET}`, verdict(wall.median / ideal, TARGET)],
      ['3', 'same, against the provider page\'s loop (one at a time, a poll every 2 s)', cell(wall, seconds), `${seconds(naiveAnalytic)} naive (analytic; measured at 1/${NAIVE_SCALE} scale: ${seconds(naiveMeasured)})`, `**${(wall.median / naiveAnalytic).toFixed(3)}** (${(naiveAnalytic / wall.median).toFixed(1)}× faster)`, '—', ''],
      ['3', `same, hand-tuned pollIntervalMs ${POLL_MS} (${pollsPer(tuned)} polls an image)`, cell(tunedWall, seconds), `${seconds(ideal)} ideal`, `**${(tunedWall.median / ideal).toFixed(2)}**`, '—', ''],
      ['3', `same, pollIntervalMs ${OLD_DEFAULT_POLL_MS}, the fixed schedule that was the default (polls at 1, 2.5, 4.75 s…; ${pollsPer(oldDefault)} polls an image)`, cell(oldWall, seconds), `${seconds(ideal)} ideal`, `**${(oldWall.median / ideal).toFixed(2)}**`, '—', 'poll-bound'],
    ]
    for (const c of MEMORY_CONCURRENCY) {
      const runsAtC = memory.get(c)
      rows.push(['5', `peak RSS of that cold run, concurrency ${c} (most in flight seen by the server: ${Math.max(...runsAtC.map((r) => r.maxInFlight))}); wall ${cell(summary(runsAtC.map((r) => r.ms)), seconds)}`, cell(summary(runsAtC.map((r) => r.maxRSS)), mebibytes), `${cell(idle, mebibytes)} nothing in flight (all cached)`, signed(summary(runsAtC.map((r) => r.maxRSS)).median - idle.median), '—', ''])
    }
    const details = [
      `3. Ideal ⌈${N}/${CONCURRENCY}⌉·${LATENCY_MS} ms = ${seconds(ideal)}. The default schedule has no history in a cold run (no records): the first ${CONCURRENCY} images are polled every 250 ms, then ×1.25, ` +
        `and each completed prediction teaches it the service's time (\`metrics.predict_time\`), so from the second round on an image is polled once, when it is due (measured: ${pollsPer(main)} polls an image; ${((6 * CONCURRENCY + N - CONCURRENCY) / N).toFixed(2)} if so). ` +
        `Measured ${seconds(wall.median)}, ${((wall.median - ideal) / rounds).toFixed(0)} ms per round of ${CONCURRENCY} over the ideal ` +
        `(the first round's polls every 250 ms, then from the poll that finds a prediction over to the next submit: a slot is free then, and the download of ${(png.length / 2 ** 20).toFixed(1)} MiB, the decode check, hash and commit overlap the next prediction; the last round's are not overlapped). ` +
        `With the first poll ${POLL_MS} ms after each submit, the best a fixed schedule allows is ⌈N/c⌉·${firstPollAfter(LATENCY_MS, POLL_MS)} ms = ${seconds(tunedBound)}; measured ${seconds(tunedWall.median)}. ` +
        `With pollIntervalMs ${OLD_DEFAULT_POLL_MS} the polls land at 1 s and 2.5 s after the submit, so each image waits for the 2.5 s poll: bound ${seconds(oldBound)}, measured ${seconds(oldWall.median)}. ` +
        `The naive loop: ${N} × ⌈L / 2 s⌉ × 2 s = ${seconds(naiveAnalytic)}; run against the same server at 1/${NAIVE_SCALE} scale it took ${seconds(naive.result.ms)} (×${NAIVE_SCALE} = ${seconds(naiveMeasured)}).`,
      `5. Peak RSS of the \`imagegen generate\` process; the reference is the same command with every image already cached (it plans, finds nothing to do and exits).`,
    ]
    return { rows, details, raw: { main, tuned, oldDefault, naive: naive.result, memory: Object.fromEntries(memory), idle: idleRuns } }
  } finally {
    await server.close()
  }
}
