import { defineConfig } from 'astro/config'
import imagegen from 'unplugin-imagegen/vite'

// Static output (Astro's default). The provider comes from imagegen.config.json: `placeholder`
// draws the images locally, so this site builds without a key and without the network.
export default defineConfig({
  vite: { plugins: [imagegen()] },
})
