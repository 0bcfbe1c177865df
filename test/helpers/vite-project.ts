import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build, createLogger, type InlineConfig } from 'vite'
import imagegen from '../../src/vite'
import type { Options } from '../../src/options'
import { listFiles, tempDir } from './temp'

export const MAIN = `import hero from './hero.images.yaml'
import art, { banner } from './art.images.yaml'
globalThis.__imagegen = { hero, art, banner }
`

/** A Vite project in a temp folder: files relative to its root. */
export function viteProject(files: Record<string, string> = {}): string {
  const dir = tempDir('imagegen-vite-')
  writeProject(dir, {
    'src/main.js': MAIN,
    'src/hero.images.yaml': 'prompt: A lighthouse at dusk\nwidth: 96\nheight: 64\nalt: A lighthouse\n',
    'src/art.images.yaml':
      'defaults:\n  width: 64\n  height: 64\nimages:\n  banner:\n    prompt: A paper-cut skyline\n    width: 128\n    height: 64\n  avatar:\n    prompt: A robot mascot\n  hero-wide:\n    prompt: Rolling hills\n',
    ...files,
  })
  return dir
}

export function writeProject(dir: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), content)
  }
}

export function copyProject(from: string): string {
  const dir = tempDir('imagegen-vite-')
  cpSync(from, dir, { recursive: true })
  return dir
}

export interface ViteBuildResult {
  outDir: string
  /** Every file of the build output, relative to it. */
  files: string[]
  /** The JavaScript of the entry chunk. */
  js: string
  /** What the entry put on `globalThis.__imagegen`. */
  values: Record<string, any>
  logs: string[]
}

let builds = 0

/** A real `vite build` of the project, entry `src/main.js`, into `dist/`. */
export async function viteBuild(root: string, options: Options, config: InlineConfig = {}): Promise<ViteBuildResult> {
  const logs: string[] = []
  const logger = createLogger('info')
  logger.info = (msg) => void logs.push(msg)
  logger.warn = (msg) => void logs.push(msg)
  logger.warnOnce = (msg) => void logs.push(msg)
  // a failing build rejects with its error; Vite's own "✗ Build failed" line stays out of the test output
  logger.error = (msg) => void logs.push(msg)
  const outDir = config.build?.outDir ?? join(root, 'dist')
  await build({
    root,
    base: '/site/',
    logLevel: 'info',
    customLogger: logger,
    configFile: false,
    plugins: [imagegen({ root, ...options })],
    ...config,
    build: { outDir, emptyOutDir: true, rollupOptions: { input: join(root, 'src/main.js') }, ...config.build },
  })
  const files = listFiles(outDir)
  const entry = files.find((f) => f.endsWith('.js'))!
  const js = readFileSync(join(outDir, entry), 'utf8')
  delete (globalThis as any).__imagegen
  await import(`${pathToFileURL(join(outDir, entry)).href}?build=${++builds}`)
  const values = (globalThis as any).__imagegen
  return { outDir, files, js, values, logs }
}
