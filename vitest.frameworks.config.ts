import { defineConfig } from 'vitest/config'

/**
 * The framework harness: real Vite SSR, Astro, SvelteKit, Nuxt and Next.js apps from examples/,
 * each installed with the packed package, built, served, run in dev, and checked in headless Chromium.
 * `npx vitest run --config vitest.frameworks.config.ts` (4–6 minutes with a warm npm cache, builds and dev servers; see test/frameworks/README.md).
 */
export default defineConfig({
  test: {
    include: ['test/frameworks/**/*.test.ts'],
    reporters: ['default', './test/reporters/closing-line.ts'],
    env: { IMAGEGEN_FRAMEWORKS_HARNESS: '1' },
    // Installs and builds are slow on a small machine; one app at a time.
    testTimeout: 1_200_000,
    hookTimeout: 900_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
})
