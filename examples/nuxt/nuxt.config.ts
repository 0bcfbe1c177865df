import imagegen from 'unplugin-imagegen/vite'

// Nuxt 4 sets Vite's root to app/; the plugin finds the project root (and so .imagegen/ and
// imagegen.config.json, which picks the local `placeholder` provider: no key, no network) here,
// next to this file.
export default defineNuxtConfig({
  compatibilityDate: '2025-07-15',
  devtools: { enabled: false },
  telemetry: false,
  vite: { plugins: [imagegen()] },
})
