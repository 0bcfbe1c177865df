import { defineConfig } from 'tsup'

export default defineConfig([
  {
    entry: {
      index: 'src/index.ts',
      vite: 'src/vite.ts',
      rollup: 'src/rollup.ts',
      webpack: 'src/webpack.ts',
      esbuild: 'src/esbuild.ts',
      rspack: 'src/rspack.ts',
      next: 'src/next.ts',
      'next-loader': 'src/next-loader.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    // `import.meta.url` (used to find sharp's package.json) works in the CJS build too.
    shims: true,
    splitting: true,
    // A bundler entry's CJS build is the plugin itself, so both `require('unplugin-imagegen/webpack')`
    // and `require('unplugin-imagegen/webpack').default` (as other unplugins are written) work.
    footer: ({ format }) =>
      format === 'cjs'
        ? { js: "if (typeof exports.default === 'function' && Object.keys(exports).length === 1) { module.exports = exports.default; module.exports.default = exports.default }" }
        : {},
    target: 'node20',
    // p-limit is ESM-only; bundling it keeps the CJS entries loadable everywhere.
    noExternal: ['p-limit'],
  },
  {
    entry: { cli: 'src/cli/bin.ts' },
    format: ['esm'],
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    noExternal: ['p-limit'],
  },
])
