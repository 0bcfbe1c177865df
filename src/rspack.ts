import unplugin from './plugin'

export default unplugin.rspack
