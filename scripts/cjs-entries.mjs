// Run after tsup, and again before `npm pack` (a bare `tsup` leaves tsup's own CJS build); running it twice is harmless.
// The code ships once, as ESM (the CLI shares its chunks). Each CJS entry becomes a `require` of the ESM one, which
// Node does from 20.19 on (this package's `engines`). The plugins' CJS entry is the plugin function, so their `.d.cts`
// (tsup's) get `export =`: `import imagegen = require('unplugin-imagegen/vite')` is callable under node16. The other
// entries list their exports by name, as CJS type checkers and bundlers read them.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

const PLUGINS = ['vite', 'rollup', 'webpack', 'esbuild', 'rspack']
const ENTRIES = ['index', ...PLUGINS, 'next', 'next-loader']

for (const name of readdirSync('dist')) if (/^chunk-.*\.cjs$|^cli\.(cjs|d\.c?ts)$/.test(name)) rmSync(`dist/${name}`)
for (const name of ENTRIES) {
  let body = `const { default: plugin } = require('./${name}.js')\nmodule.exports = plugin\nmodule.exports.default = plugin\n`
  if (!PLUGINS.includes(name)) {
    const names = Object.keys(await import(pathToFileURL(`dist/${name}.js`).href))
    body = `Object.defineProperty(exports, '__esModule', { value: true })\nconst esm = require('./${name}.js')\n${names.map((n) => `exports.${n} = esm.${n}\n`).join('')}`
  }
  writeFileSync(`dist/${name}.cjs`, `'use strict'\n${body}`)
}
for (const name of PLUGINS) {
  const path = `dist/${name}.d.cts`
  const types = readFileSync(path, 'utf8')
  const assigned = types.replace(/export \{ (\w+) as default \};/, 'export = $1;')
  if (assigned === types && !/^export = \w+;$/m.test(types)) throw new Error(`${path}: no \`export { … as default }\` to make \`export =\``)
  writeFileSync(path, assigned)
}
