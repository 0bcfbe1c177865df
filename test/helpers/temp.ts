import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'

/** A fresh temp folder, removed after the test file. */
export function tempDir(prefix = 'imagegen-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Every file below `dir`, as paths relative to it. */
export function listFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (current: string, prefix: string) => {
    for (const name of readdirSync(current)) {
      const path = join(current, name)
      if (statSync(path).isDirectory()) walk(path, `${prefix}${name}/`)
      else out.push(`${prefix}${name}`)
    }
  }
  walk(dir, '')
  return out.sort()
}

/** Files below `dir` whose bytes contain `needle`. */
export function filesContaining(dir: string, needle: string): string[] {
  return listFiles(dir).filter((file) => readFileSync(join(dir, file)).includes(needle))
}
