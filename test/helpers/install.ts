import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { tempDir } from './temp'

/**
 * npm packages this repository does not depend on (an older Vite, a user's YAML loader), installed
 * as a user would into a temp folder outside it; from npm's cache when it can. Returns the folder.
 */
export function install(...packages: string[]): string {
  const dir = tempDir('imagegen-deps-')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }))
  execFileSync('npm', ['install', ...packages, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
    cwd: dir,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  })
  return dir
}

/** Vite's JavaScript API from a folder made by `install('vite@7')`. */
export async function importVite(dir: string): Promise<typeof import('vite')> {
  return import(pathToFileURL(join(dir, 'node_modules/vite/dist/node/index.js')).href)
}
