import unplugin from '.'

export default unplugin.rollup
