// Module hooks for the like-for-like run of vite-imagetools: its `import sharp from 'sharp'`
// resolves to the copy the plugin uses (the repository's own sharp) instead of its nested one.
const repoPackage = new URL('../../package.json', import.meta.url).href

export async function resolve(specifier, context, next) {
  if (specifier === 'sharp' && context.parentURL?.includes('/node_modules/vite-imagetools/')) return next(specifier, { ...context, parentURL: repoPackage })
  return next(specifier, context)
}
