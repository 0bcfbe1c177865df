import { fileURLToPath } from 'node:url'
import { withImagegen } from 'unplugin-imagegen/next'

// This folder is the app's root, even inside the plugin's repository (which has a lock file of its own).
const root = fileURLToPath(new URL('.', import.meta.url))

// withImagegen sets up both bundlers: Turbopack (`next build`, the default in Next 16) and
// webpack (`next build --webpack`). The provider comes from imagegen.config.json: `placeholder`
// draws the images locally, so this app builds without a key and without the network.
export default withImagegen({
  outputFileTracingRoot: root,
  turbopack: { root },
})
