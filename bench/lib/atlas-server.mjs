// The tests' loopback Atlas Cloud (test/atlas-server.ts), compiled on the fly with esbuild:
// the bench talks to the same stand-in the tests do, with its `latencyMs` per prediction.
import { mkdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'

const repo = fileURLToPath(new URL('../../', import.meta.url))

export async function loadAtlasServer() {
  // inside the repository, so that the bundle's `sharp` import resolves to its node_modules
  const dir = `${repo}node_modules/.cache/unplugin-imagegen-bench`
  mkdirSync(dir, { recursive: true })
  const outfile = `${dir}/atlas-server.mjs`
  await build({
    entryPoints: [`${repo}test/atlas-server.ts`],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  })
  return import(`${pathToFileURL(outfile).href}?t=${Date.now()}`)
}
