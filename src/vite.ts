import unplugin from './plugin'

export default unplugin.vite
