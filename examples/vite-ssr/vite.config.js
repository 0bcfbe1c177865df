import imagegen from 'unplugin-imagegen/vite'

// The provider comes from imagegen.config.json: `placeholder` draws the images locally,
// so this app builds without a key and without the network.
export default {
  plugins: [imagegen()],
}
