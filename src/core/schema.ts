import * as z from 'zod/mini'

const DEFAULT_MODEL = 'black-forest-labs/flux-schnell'
const MAX_PROMPT_LENGTH = 10_000
const MAX_INPUT_DEPTH = 8

function depth(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  return 1 + Object.values(value).reduce((deepest: number, child) => Math.max(deepest, depth(child)), 0)
}

/** Raw `input` fields the spec owns (the service's body takes them from the spec), and ones that multiply the bill unless 1. */
export const SPEC_FIELDS = new Set(['model', 'prompt', 'width', 'height', 'seed', 'steps', 'guidance_scale'])
export const COUNT_FIELDS = new Set(['num_images', 'num_outputs', 'batch_size', 'n', 'samples'])

/** Every field an image spec may have, in the order messages list them. */
export const FIELD_NAMES = ['prompt', 'model', 'width', 'height', 'steps', 'guidance_scale', 'seed', 'input', 'image', 'alt', 'format', 'quality', 'widths', 'placeholder'] as const
type FieldName = (typeof FIELD_NAMES)[number]

const show = (value: unknown): string =>
  typeof value === 'string' || (value !== null && typeof value === 'object') ? JSON.stringify(value) : String(value)

/** zod's `error` parameter for `must be <rule> (got <input>)`: the words of every message about a manifest or an option. */
export const mustBe = (rule: string) => ({ error: (issue: { input?: unknown }) => `must be ${rule} (got ${show(issue.input)})` })

/** A whole number from `min` to `max`, with one rule for every way to miss it (zod/mini: checks are listed, not chained). */
const wholeNumber = (rule: string, min: number, max: number) =>
  z.int(mustBe(rule)).check(z.minimum(min, mustBe(`at least ${min}`)), z.maximum(max, mustBe(`at most ${max}`)))

/**
 * The manifest schemas, made on first use (only a manifest that is not in the parsed store needs them):
 * `imageFields`, every field an image spec may have, each optional (`defaults` may set any of them, and the required
 * ones are checked after `defaults` are merged under an entry); `collection`, `defaults:` and `images:`. zod/mini is
 * bundled into the package: its checks are functions, so only the ones used here are shipped.
 */
export const schemas = () => (made ??= makeSchemas())
let made: ReturnType<typeof makeSchemas> | undefined

function makeSchemas() {
  const dimension = wholeNumber('a whole number of pixels from 64 to 2048, a multiple of 16', 64, 2048).check(
    z.multipleOf(16, {
      error: (iss) => {
        const lower = Math.max(64, Math.floor((iss.input as number) / 16) * 16)
        return `must be a multiple of 16 (got ${iss.input}): use ${lower} or ${Math.min(2048, lower + 16)}`
      },
    }),
  )

  const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
    z.enum(values, mustBe(`one of ${values.map((v) => `\`${v}\``).join(', ')}`))

  const imageFields = z.partial(
    z.strictObject({
      prompt: z.string(mustBe('a text prompt')).check(
        z.trim(),
        z.minLength(1, { error: 'must not be empty: describe the image to generate' }),
        z.maxLength(MAX_PROMPT_LENGTH, {
          error: (iss) =>
            `is too long (${(iss.input as string).length} characters, at most ${MAX_PROMPT_LENGTH}): FLUX reads only the first few hundred words`,
        }),
      ),
      model: z.string(mustBe('a provider model id')).check(z.minLength(1, { error: `must not be empty (the default is \`${DEFAULT_MODEL}\`)` })),
      width: dimension,
      height: dimension,
      steps: wholeNumber('a whole number from 1 to 50', 1, 50),
      guidance_scale: z.number(mustBe('a number')),
      seed: wholeNumber('a whole number from 0 to 4294967295 (a fixed seed keeps the image reproducible)', 0, 4294967295),
      input: z.record(z.string(), z.unknown(), mustBe('a map of raw provider fields, like `enable_safety_checker: true`')).check(
        z.refine((input) => depth(input) <= MAX_INPUT_DEPTH, {
          error: `is nested too deeply (more than ${MAX_INPUT_DEPTH} levels): provider fields are flat values, lists or small maps`,
        }),
        z.superRefine((input, ctx) => {
          for (const field of Object.keys(input)) {
            const why = SPEC_FIELDS.has(field)
              ? `would override the spec's own \`${field}\`, which the key, the size check and the bill are made from: set \`${field}\` itself`
              : COUNT_FIELDS.has(field) && input[field] !== 1 && `would ask for several images, billed as many while counted as one: one spec is one image (use more entries)`
            if (why) ctx.addIssue({ code: 'custom', path: [field], message: why, input })
          }
        }),
      ),
      image: z.string(mustBe('a path to a local image, relative to the manifest')).check(z.minLength(1, { error: 'must not be empty' })),
      alt: z.string(mustBe('the alternative text')),
      format: oneOf(['webp', 'avif', 'png', 'jpeg', 'original']),
      quality: wholeNumber('a whole number from 1 to 100', 1, 100),
      widths: z
        .array(wholeNumber('a whole number of pixels from 16 to 2048', 16, 2048), mustBe('a list of widths in pixels, like [480, 768]'))
        .check(z.minLength(1, { error: 'must list at least one width, or be left out' })),
      placeholder: oneOf(['blur', 'none']),
    } satisfies Record<FieldName, unknown>),
  )

  return {
    imageFields,
    collection: z.strictObject({
      defaults: z.optional(imageFields),
      images: z.record(z.string(), imageFields, {
        error: (iss) =>
          iss.input === undefined || iss.input === null
            ? 'is missing: a manifest with `defaults:` lists its entries under `images:`, like `banner: { prompt: … }`'
            : `must map entry names to image specs (got ${show(iss.input)})`,
      }),
    }),
  }
}

/**
 * An image spec as written in a manifest, every field optional (PRODUCT.md, "Manifest format"). Written out rather than
 * `z.infer`red: zod is bundled, so the published types must not name it. The schema above is checked against it below.
 */
export interface ImageFields {
  /** What to draw; trimmed, 1 to 10,000 characters. */
  prompt?: string
  /** The provider's model id. @default 'black-forest-labs/flux-schnell' */
  model?: string
  /** Pixels, 64 to 2048, a multiple of 16. @default 1024 */
  width?: number
  /** Pixels, 64 to 2048, a multiple of 16. @default 1024 */
  height?: number
  /** Sampling steps, 1 to 50. @default the model's own */
  steps?: number
  /** How closely the image follows the prompt. @default the model's own */
  guidance_scale?: number
  /** 0 to 4294967295; the same seed and spec give the same image. @default derived from the spec's hash, so a lost image can be made again */
  seed?: number
  /** Raw provider fields, sent as they are (at most 8 levels deep); none may override a field above or ask for several images. */
  input?: Record<string, unknown>
  /** A reference image, relative to the manifest, inside the project; its bytes are part of the key. */
  image?: string
  /** The alternative text. @default the prompt */
  alt?: string
  /** The emitted format; `original` is the provider's file as delivered. @default 'webp' */
  format?: 'webp' | 'avif' | 'png' | 'jpeg' | 'original'
  /** Encoder quality, 1 to 100. @default 80 */
  quality?: number
  /** Widths in pixels to emit besides the full size (16 to 2048, never above `width`), for `srcset`. */
  widths?: number[]
  /** `blur`: a tiny inlined preview as `placeholder`. @default 'none' */
  placeholder?: 'blur' | 'none'
}
/** The schema's output is exactly `ImageFields`: this fails to compile if either changes without the other. */
type Parsed = z.infer<ReturnType<typeof schemas>['imageFields']>
const exactly: [Parsed, ImageFields] extends [ImageFields, Parsed] ? true : never = true
void exactly

type WithDefaults = 'prompt' | 'model' | 'width' | 'height' | 'alt' | 'format' | 'quality' | 'placeholder'

/** An image spec after `defaults` and the built-in defaults are applied. */
export type ImageSpec = Required<Pick<ImageFields, WithDefaults>> & Omit<ImageFields, WithDefaults>

export const BUILTIN_DEFAULTS = {
  model: DEFAULT_MODEL,
  width: 1024,
  height: 1024,
  format: 'webp',
  quality: 80,
  placeholder: 'none',
} as const satisfies Partial<ImageSpec>
