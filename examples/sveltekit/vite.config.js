import { sveltekit } from '@sveltejs/kit/vite'
import imagegen from 'unplugin-imagegen/vite'
import { defineConfig } from 'vite'

// The provider comes from imagegen.config.json: `placeholder` draws the images locally,
// so this app builds without a key and without the network.
export default defineConfig({
  plugins: [imagegen(), sveltekit()],
  define: { __PRERENDER__: JSON.stringify(process.env.IMAGEGEN_EXAMPLE_ADAPTER !== 'node') },
})
