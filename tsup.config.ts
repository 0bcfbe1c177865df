import { defineConfig } from 'tsup'

// The ESM build is the code; `scripts/cjs-entries.mjs` then makes each CJS entry a `require` of it (see there).
export default defineConfig({
  entry: Object.fromEntries(
    ['index', 'vite', 'rollup', 'webpack', 'esbuild', 'rspack', 'next', 'next-loader', 'cli/bin'].map((name) => [name === 'cli/bin' ? 'cli' : name, `src/${name}.ts`]),
  ),
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  splitting: true,
  target: 'node20',
  // zod/mini is bundled: only the checks used are shipped, and one file loads in a few ms where its 200-odd modules took ~60.
  noExternal: ['zod'],
})
