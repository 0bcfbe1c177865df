import adapterNode from '@sveltejs/adapter-node'
import adapterStatic from '@sveltejs/adapter-static'

// `npm run build`: every page prerendered into build/ (adapter-static).
// `npm run build:node`: a Node server in build-node/ that renders on each request (adapter-node);
// start it with `npm start` (PORT and HOST from the environment).
const node = process.env.IMAGEGEN_EXAMPLE_ADAPTER === 'node'

export default {
  kit: {
    adapter: node ? adapterNode({ out: 'build-node' }) : adapterStatic({ pages: 'build', assets: 'build' }),
  },
}
