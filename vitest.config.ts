import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the framework apps are built by `npm run test:frameworks` (vitest.frameworks.config.ts), which CI runs after this
    exclude: ['test/frameworks/**', '**/node_modules/**'],
    reporters: ['default', './test/reporters/closing-line.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    typecheck: {
      enabled: true,
      include: ['test/**/*.test-d.ts'],
      tsconfig: 'test/types/tsconfig.json',
    },
  },
})
