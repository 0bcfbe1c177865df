import unplugin from '.'

export default unplugin.rspack
