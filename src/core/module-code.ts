import type { ImageFormat } from './image-info'

/** What an import of a manifest gives for each image (see PRODUCT.md). */
export interface GeneratedImage {
  /** URL of the emitted file, through the bundler's own public path. */
  src: string
  width: number
  height: number
  format: ImageFormat
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

/** A `GeneratedImage` whose URLs are JavaScript expressions (each bundler spells a file URL its own way). */
export type ImageModuleValue = Omit<GeneratedImage, 'src' | 'srcset'> & { src: Code; srcset?: Code }

/** A piece of JavaScript to put in the module as it is. */
export class Code {
  constructor(readonly js: string) {}
}

const RESERVED = new Set(
  ('break case catch class const continue debugger default delete do else enum export extends false finally for ' +
    'function if import in instanceof new null return super switch this throw true try typeof var void while with ' +
    'yield let static implements interface package private protected public await arguments eval undefined NaN Infinity')
    .split(' '),
)

/** Names usable as `export const <name>` (`__imagegen…` is kept for the module's own bindings). */
export function isExportableName(name: string): boolean {
  return /^[A-Za-z_$][\w$]*$/.test(name) && !RESERVED.has(name) && !name.startsWith('__imagegen')
}

function literal(value: unknown): string {
  if (value instanceof Code) return value.js
  if (value !== null && typeof value === 'object') {
    const fields = Object.entries(value).filter(([, v]) => v !== undefined)
    return `{ ${fields.map(([k, v]) => `${JSON.stringify(k)}: ${literal(v)}`).join(', ')} }`
  }
  return JSON.stringify(value)
}

/** Imports a module needs at its top (files handed to the bundler's own asset handling). */
export class ModuleImports {
  private readonly names = new Map<string, string>()

  /** The URL of the default export of the file at `path`, imported once however often it is asked for. */
  add(path: string): Code {
    const specifier = path.split('\\').join('/')
    if (!this.names.has(specifier)) this.names.set(specifier, `__imagegen_asset${this.names.size}`)
    return new Code(`__imagegen_url(${this.names.get(specifier)})`)
  }

  preamble(): string {
    if (this.names.size === 0) return ''
    const imports = [...this.names].map(([specifier, name]) => `import ${name} from ${JSON.stringify(specifier)};\n`).join('')
    // An image import is a URL, or (Next's static images) an object with one in `src`.
    return `${imports}const __imagegen_url = (image) => (typeof image === "string" ? image : image.src);\n`
  }
}

/** A single image's module exports it as its default; a collection's, each entry that has a usable name too. */
export function imageModule(images: ImageModuleValue | ReadonlyMap<string, ImageModuleValue>, imports: ModuleImports): string {
  const preamble = imports.preamble()
  if (!(images instanceof Map)) return `${preamble}const image = ${literal(images)};\nexport default image;\n`
  const lines: string[] = []
  const fields: string[] = []
  let i = 0
  for (const [name, image] of images) {
    const binding = isExportableName(name) ? name : `__imagegen_entry${i++}`
    lines.push(`${isExportableName(name) ? 'export ' : ''}const ${binding} = ${literal(image)};`)
    fields.push(`${JSON.stringify(name)}: ${binding}`)
  }
  return `${preamble}${lines.join('\n')}\nconst __imagegen_default = { ${fields.join(', ')} };\nexport default __imagegen_default;\n`
}
