export { createAtlasProvider, DEFAULT_BASE_URL, type AtlasProviderOptions } from './provider'
