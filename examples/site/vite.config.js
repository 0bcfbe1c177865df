import imagegen from 'unplugin-imagegen/vite'

export default {
  plugins: [
    // The committed cache in .imagegen/ was drawn by the local placeholder provider, so this
    // demo builds without a key or the network. Switch to `provider: 'atlas'` (the default)
    // and set ATLASCLOUD_API_KEY to have FLUX.1 [schnell] make the images instead.
    imagegen({ provider: 'placeholder' }),
  ],
}
