// `npm run demo`: builds this site with the package built from the repository.
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'

const root = fileURLToPath(new URL('.', import.meta.url))
await build({ root })
const dist = relative(process.cwd(), `${root}dist`) || '.'
console.log(`\nThe demo site is built in ${dist}/`)
console.log(`Serve it with: npx vite preview ${relative(process.cwd(), root) || '.'}  (then open the URL it prints)`)
