import unplugin from '.'

export default unplugin.esbuild
