// 4. Planning at scale: 100 manifests × 100 entries, every image cached. The package's core
//    API reads, validates, keys and plans them in a fresh process (bench/children/plan.mjs),
//    as a build's bill guard (once an image is missing) or `imagegen status` does. The cache is filled through
//    `ImageCache.commit`, with a tiny stand-in file per image: planning reads each record and
//    stats its image, and never opens the image itself.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { childScript, runChild } from '../lib/child.mjs'
import { inclusive, isOwnCode, profileChild, profileMarkdown, summarizeProfile } from '../lib/profile.mjs'
import { collection, writeFiles } from '../lib/projects.mjs'
import { cell, micros, millis, seconds, summary } from '../lib/stats.mjs'

const MANIFESTS = 100
const PER_MANIFEST = 100
const TARGET_MS = 500
/** A valid 1×1 PNG. */
const TINY_PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc000000301010018dd8db40000000049454e44ae426082', 'hex')

export async function planning({ workdir, runs, log, profile: forceProfile }) {
  const { openProject } = await import('unplugin-imagegen')
  const root = join(workdir, 'plan')
  const files = Object.fromEntries(Array.from({ length: MANIFESTS }, (_, g) => [`src/section${g}/m${g}.images.yaml`, collection(1000 + g, PER_MANIFEST)]))
  writeFiles(root, { ...files, 'imagegen.config.json': JSON.stringify({ provider: 'placeholder' }) })

  log(`  setup: caching ${MANIFESTS * PER_MANIFEST} images through the project's cache`)
  const project = openProject({}, { from: root, env: {} })
  const { cache } = project
  const completedAt = new Date().toISOString()
  for (const path of Object.keys(files)) {
    const { entries } = await project.read(join(root, path))
    await Promise.all(
      entries.map(async (entry) => {
        const temp = await cache.tempFile(entry.key)
        writeFileSync(temp, TINY_PNG)
        await cache.commit(temp, { format: 'png', width: entry.pixels.width, height: entry.pixels.height }, {
          key: entry.key, spec: entry.pixels, provider: 'placeholder', model: entry.pixels.model, completedAt,
        })
      }),
    )
  }

  // one plan hashes each new image once and writes the memo of verified entries, as the first build on a machine does
  project.plan((await project.readAll(await project.findManifests())).entries)

  log(`  ${runs} runs of the plan in a fresh process; ${runs} runs of \`imagegen status --json\``)
  const plans = []
  const status = []
  for (let i = 0; i < runs; i++) {
    const plan = await runChild(childScript('plan.mjs'), [root, 'placeholder', '2'], { cwd: root })
    if (plan.result.cached !== MANIFESTS * PER_MANIFEST || plan.result.missing !== 0) throw new Error(`plan: ${plan.result.cached} cached, ${plan.result.missing} missing`)
    plans.push(plan.result)
    const run = await runChild(childScript('cli.mjs'), ['status', '--json'], { cwd: root, env: { IMAGEGEN_OFFLINE: '' } })
    if (run.result.exitCode !== 0) throw new Error(`imagegen status exited ${run.result.exitCode}`)
    status.push(run.result.processMs)
  }
  const entries = MANIFESTS * PER_MANIFEST
  const first = (k) => summary(plans.map((p) => p.iterations[0][k]))
  const second = summary(plans.map((p) => p.iterations[1].totalMs))
  const total = first('totalMs')
  const met = total.median <= TARGET_MS
  const rows = [
    ['4', `plan ${entries.toLocaleString('en')} cached entries (${MANIFESTS} manifests × ${PER_MANIFEST}): read, validate, key, plan`, cell(total, seconds), `${micros(total.median / entries)} per entry`, '—', `≤ ${seconds(TARGET_MS)}`, met ? 'met' : '**missed**'],
    ['4', `same, end to end: \`imagegen status --json\` (process start to exit)`, cell(summary(status), seconds), `${micros(summary(status).median / entries)} per entry`, '—', '—', ''],
  ]
  const details = [
    `4. Phases of the first plan in a fresh process (median): find the manifests ${millis(first('findMs').median)}, read, validate and key them (through the parsed store) ${millis(first('readMs').median)}, ` +
      `plan (a record read and a stat per image) ${millis(first('planMs').median)}. ` +
      `A second plan in the same process (code already optimized by the JIT) takes ${cell(second, seconds)}. Loading the package: ${millis(summary(plans.map((p) => p.importMs)).median)}.`,
  ]
  let profile
  if (!met || forceProfile) {
    log('  profiling one plan (node --cpu-prof)')
    const cpu = await profileChild(childScript('plan.mjs'), [root, 'placeholder', '1'], { cwd: root })
    const dist = (name) => (cf) => isOwnCode(cf) && cf.functionName === name
    const pkg = (name) => (cf) => cf.url.includes(`/node_modules/${name}/`)
    profile = {
      summary: summarizeProfile(cpu, { top: 15 }),
      inclusive: {
        parseManifest: inclusive(cpu, dist('parseManifest')),
        'yaml (all of it)': inclusive(cpu, pkg('yaml')),
        'zod/mini (bundled): safeParse': inclusive(cpu, (cf) => isOwnCode(cf) && cf.functionName.includes('safeParse')),
        keyEntries: inclusive(cpu, dist('keyEntries')),
        keySpec: inclusive(cpu, dist('keySpec')),
        canonicalJSON: inclusive(cpu, dist('canonicalJSON')),
        planImages: inclusive(cpu, dist('planImages')),
        'ImageCache.lookup': inclusive(cpu, dist('lookup')),
      },
    }
    details.push(`4. Profile of one plan of ${entries.toLocaleString('en')} entries (\`node --cpu-prof\`), inclusive time: ` +
      Object.entries(profile.inclusive).map(([name, ms]) => `\`${name}\` ${millis(ms)}`).join(', ') + '.\n\n' + profileMarkdown(profile.summary))
  }
  return { rows, details, raw: { plans, status, profile } }
}
