import imagegen from 'unplugin-imagegen/vite'

// Settings shared with the `imagegen` CLI live in imagegen.config.json. It picks the local
// placeholder provider: the committed images in .imagegen/ were drawn by it, so this demo
// builds without a key or the network. Remove that line (the default is 'atlas') and set
// ATLASCLOUD_API_KEY to have FLUX.1 [schnell] make the images instead.
export default {
  plugins: [imagegen()],
}
