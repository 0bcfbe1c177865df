// Ambient types for manifest imports: add `/// <reference types="unplugin-imagegen/client" />`
// (or list "unplugin-imagegen/client" in tsconfig's `types`). A file name cannot tell a single image
// from a collection, so the module type below is loose; the `dts` option writes exact types per manifest.
interface ImagegenGeneratedImage {
  /** URL of the emitted file, through the bundler's own public path. */
  src: string
  width: number
  height: number
  format: 'webp' | 'avif' | 'png' | 'jpeg'
  /** Alternative text (the prompt unless `alt` is set). */
  alt: string
  /** Present when the spec sets `widths`. */
  srcset?: string
  /** A tiny data URL, when the spec sets `placeholder: blur`. */
  placeholder?: string
  /** The same data URL, under the name `next/image` and Astro expect; with its size in pixels. */
  blurDataURL?: string
  blurWidth?: number
  blurHeight?: number
  prompt: string
  model: string
  seed: number
  /** The spec's content hash. */
  key: string
}

declare module '*.images.yaml' {
  /** A single image, or (for a collection) a map of every entry by name. */
  const image: ImagegenGeneratedImage & Record<string, ImagegenGeneratedImage>
  export default image
  export type GeneratedImage = ImagegenGeneratedImage
}

declare module '*.images.yml' {
  const image: ImagegenGeneratedImage & Record<string, ImagegenGeneratedImage>
  export default image
  export type GeneratedImage = ImagegenGeneratedImage
}
