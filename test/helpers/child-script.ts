import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'

/**
 * Bundles a TypeScript script that imports from `src/` into a
 * runnable `.mjs`, for tests that run — and kill — the real code in a child process.
 */
export async function bundleScript(contents: string, name: string): Promise<string> {
  const out = await build({
    stdin: { contents, resolveDir: join(import.meta.dirname, '..'), loader: 'ts', sourcefile: `${name}.ts` },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    logLevel: 'silent',
  })
  const folder = join(import.meta.dirname, '../../node_modules/.cache/imagegen-test-scripts')
  mkdirSync(folder, { recursive: true })
  const file = join(folder, `${name}-${process.pid}.mjs`)
  writeFileSync(file, out.outputFiles[0]!.text)
  return file
}
