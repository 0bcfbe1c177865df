// 2. Transforms against vite-imagetools: the same 50 source images (PNG originals made by the
//    placeholder provider), each to WebP at 1024 and 512 px, quality 80. The plugin gets them
//    from manifests with `widths: [512]`; vite-imagetools from `?w=512;1024&format=webp` imports
//    of copies of the same PNG files. Cold: each tool's own cache of derived files is deleted
//    first (the plugin's `.imagegen/` originals stay: they are the committed sources).
import { cpSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { childScript, rounds, runChild } from '../lib/child.mjs'
import { collection, imagetoolsSite, INDEX_HTML, manifestSite, writeFiles } from '../lib/projects.mjs'
import { cell, ratioCell, seconds, summary, verdict } from '../lib/stats.mjs'

const GROUPS = 5
const PER_GROUP = 10
const WIDTHS = [512, 1024]
const QUALITY = 80

export async function transforms({ workdir, runs, log, pluginSite }) {
  const { openProject } = await import('unplugin-imagegen')
  const pluginRoot = join(workdir, 'transform-plugin')
  const toolsRoot = join(workdir, 'transform-imagetools')
  // The first 10 prompts of the warm site's first 5 manifests: the same keys, so the same originals.
  const manifests = Array.from({ length: GROUPS }, (_, g) => `art/t${g}.images.yaml`)
  const sources = manifests.map((_, g) => collection(g, PER_GROUP, ['width: 1024', 'height: 1024', `widths: [${WIDTHS[0]}]`, `quality: ${QUALITY}`]))
  writeFiles(pluginRoot, {
    'index.html': INDEX_HTML,
    'imagegen.config.json': JSON.stringify({ provider: 'placeholder' }),
    'src/main.js': manifestSite(manifests),
    ...Object.fromEntries(manifests.map((m, g) => [`src/${m}`, sources[g]])),
  })
  cpSync(join(pluginSite, '.imagegen'), join(pluginRoot, '.imagegen'), { recursive: true })

  const originals = []
  const project = openProject({}, { from: pluginRoot, env: {} })
  for (const [g, m] of manifests.entries()) {
    const { entries } = await project.read(join(pluginRoot, 'src', m))
    for (const entry of entries) originals.push({ from: join(pluginRoot, '.imagegen/images', `${entry.key}.png`), file: `img/t${g}-${entry.name}.png` })
  }
  for (const { from, file } of originals) cpSync(from, join(toolsRoot, 'src', file))
  writeFiles(toolsRoot, { 'index.html': INDEX_HTML, 'src/main.js': imagetoolsSite(originals.map((o) => o.file), WIDTHS, QUALITY) })

  const pluginCache = join(pluginRoot, 'node_modules/.cache/unplugin-imagegen')
  const toolsCache = join(toolsRoot, 'node_modules/.cache/imagetools')
  const expected = originals.length * WIDTHS.length
  const buildOf = (root, kind, clear) => async () => {
    if (clear) rmSync(clear, { recursive: true, force: true })
    const run = await runChild(childScript('vite-build.mjs'), [root, kind], { cwd: root })
    if (run.result.emitted !== expected) throw new Error(`${kind} emitted ${run.result.emitted} images, not ${expected}`)
    if (kind === 'imagetools-shared-sharp' && run.result.nestedSharp) throw new Error('vite-imagetools still loaded its own sharp')
    return run.result
  }
  log(`  ${runs} rounds of: plugin cold, imagetools cold, imagetools on the plugin's sharp cold, plugin warm, imagetools warm (${originals.length} images × ${WIDTHS.length} widths)`)
  const results = await rounds(runs, {
    pluginCold: buildOf(pluginRoot, 'plugin', pluginCache),
    toolsCold: buildOf(toolsRoot, 'imagetools', toolsCache),
    sharedCold: buildOf(toolsRoot, 'imagetools-shared-sharp', toolsCache),
    pluginWarm: buildOf(pluginRoot, 'plugin'),
    toolsWarm: buildOf(toolsRoot, 'imagetools'),
  }, (i) => log(`    round ${i + 1}/${runs}`))
  const bytes = (k) => results[k][0].emittedBytes
  const sameBytes = ['toolsCold', 'sharedCold'].every((k) => bytes(k) === bytes('pluginCold'))
  const sharpVersion = createRequire(import.meta.url)('sharp').versions.sharp
  const time = (k) => summary(results[k].map((r) => r.processMs))
  const cpu = (k) => summary(results[k].map((r) => r.cpuMs))
  const met = (a, b) => verdict(a.median / b.median, 1)
  const rows = [
    ['2', `${originals.length} images → WebP ${WIDTHS.join(' + ')} px, cold (each tool's cache cleared)`, cell(time('pluginCold'), seconds), `${cell(time('toolsCold'), seconds)} vite-imagetools`, ratioCell(time('pluginCold'), time('toolsCold')), '≤ 1.00', met(time('pluginCold'), time('toolsCold'))],
    ['2', 'same, cold, like for like: vite-imagetools on the plugin\'s sharp', cell(time('pluginCold'), seconds), `${cell(time('sharedCold'), seconds)} vite-imagetools with sharp ${sharpVersion}`, ratioCell(time('pluginCold'), time('sharedCold')), '≤ 1.00', met(time('pluginCold'), time('sharedCold'))],
    ['2', 'same, cold: CPU time of all threads (steadier than wall time on a shared machine)', cell(cpu('pluginCold'), seconds), `${cell(cpu('toolsCold'), seconds)} vite-imagetools; ${cell(cpu('sharedCold'), seconds)} on sharp ${sharpVersion}`, `${ratioCell(cpu('pluginCold'), cpu('toolsCold'))}; ${ratioCell(cpu('pluginCold'), cpu('sharedCold'))}`, '≤ 1.00', met(cpu('pluginCold'), cpu('toolsCold'))],
    ['2', 'same, warm (each tool\'s cache kept)', cell(time('pluginWarm'), seconds), `${cell(time('toolsWarm'), seconds)} vite-imagetools`, ratioCell(time('pluginWarm'), time('toolsWarm')), '≤ 1.00', met(time('pluginWarm'), time('toolsWarm'))],
  ]
  const build = (k) => summary(results[k].map((r) => r.buildMs))
  const buildRatio = (a, b) => (build(a).median / build(b).median).toFixed(2)
  const details = [
    `2. \`build()\` alone, without loading Vite and the plugins — cold: plugin ${cell(build('pluginCold'), seconds)}, vite-imagetools ${cell(build('toolsCold'), seconds)} (ratio ${buildRatio('pluginCold', 'toolsCold')}), ` +
      `vite-imagetools on sharp ${sharpVersion} ${cell(build('sharedCold'), seconds)} (ratio ${buildRatio('pluginCold', 'sharedCold')}); ` +
      `warm: plugin ${cell(build('pluginWarm'), seconds)}, vite-imagetools ${cell(build('toolsWarm'), seconds)} (ratio ${buildRatio('pluginWarm', 'toolsWarm')}); ` +
      `warm CPU time: plugin ${cell(cpu('pluginWarm'), seconds)}, vite-imagetools ${cell(cpu('toolsWarm'), seconds)} (ratio ${(cpu('pluginWarm').median / cpu('toolsWarm').median).toFixed(2)}). ` +
      `The emitted WebP files ${sameBytes ? `are the same size for all three (${(bytes('pluginCold') / 1024).toFixed(0)} KiB in all)` : `differ in size: plugin ${bytes('pluginCold')} B, vite-imagetools ${bytes('toolsCold')} B, on the plugin's sharp ${bytes('sharedCold')} B`}.`,
  ]
  return { rows, details, raw: results }
}
