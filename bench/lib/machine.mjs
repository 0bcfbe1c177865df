import { readFileSync } from 'node:fs'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

function cpuModel() {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'))
    if (line) return line.split(':')[1].trim()
  } catch {}
  return cpus()[0]?.model ?? 'unknown'
}

/** A package's version, read from its folder (not every package exports its package.json). */
const version = (name) => {
  try {
    return JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version
  } catch {
    return 'not installed'
  }
}

export function machine() {
  const sharp = require('sharp')
  let imagetoolsSharp = 'not installed'
  try {
    const nested = require(require.resolve('sharp', { paths: [require.resolve('vite-imagetools')] }))
    imagetoolsSharp = `${nested.versions.sharp} (libvips ${nested.versions.vips})`
  } catch {}
  return {
    node: process.version,
    cpu: cpuModel(),
    cores: availableParallelism(),
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    os: `${process.platform} ${process.arch}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    vite: version('vite'),
    viteImagetools: version('vite-imagetools'),
    sharp: `${sharp.versions.sharp} (libvips ${sharp.versions.vips})`,
    imagetoolsSharp,
    plugin: JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version,
  }
}
