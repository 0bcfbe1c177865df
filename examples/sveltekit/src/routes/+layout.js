// Prerendered with adapter-static; rendered on each request with adapter-node (see svelte.config.js).
export const prerender = __PRERENDER__
