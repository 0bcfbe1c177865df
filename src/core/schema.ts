import { z } from 'zod'

export const DEFAULT_MODEL = 'black-forest-labs/flux-schnell'
export const FORMATS = ['webp', 'avif', 'png', 'jpeg', 'original'] as const
export const PLACEHOLDERS = ['blur', 'none'] as const

export const MAX_PROMPT_LENGTH = 10_000
const MAX_INPUT_DEPTH = 8

function depth(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  let deepest = 0
  for (const child of Object.values(value)) {
    deepest = Math.max(deepest, depth(child))
    if (deepest > MAX_INPUT_DEPTH) break
  }
  return deepest + 1
}

const show = (value: unknown): string =>
  value !== null && typeof value === 'object' ? JSON.stringify(value) : typeof value === 'string' ? JSON.stringify(value) : String(value)

function integer(rule: string, min: number, max: number) {
  return z
    .number({ error: (iss) => `must be ${rule} (got ${show(iss.input)})` })
    .int({ error: (iss) => `must be ${rule} (got ${show(iss.input)})` })
    .min(min, { error: (iss) => `must be at least ${min} (got ${show(iss.input)})` })
    .max(max, { error: (iss) => `must be at most ${max} (got ${show(iss.input)})` })
}

const dimension = integer('a whole number of pixels from 64 to 2048, a multiple of 16', 64, 2048).multipleOf(16, {
  error: (iss) => {
    const value = iss.input as number
    const lower = Math.max(64, Math.floor(value / 16) * 16)
    const upper = Math.min(2048, lower + 16)
    return `must be a multiple of 16 (got ${value}): use ${lower} or ${upper}`
  },
})

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (iss) => `must be one of ${values.map((v) => `\`${v}\``).join(', ')} (got ${show(iss.input)})`,
  })
}

const text = (what: string) =>
  z.string({ error: (iss) => `must be ${what} (got ${show(iss.input)})` })

/**
 * Every field an image spec may have, each optional: `defaults` may set any of them,
 * and the required ones are checked after `defaults` are merged under an entry.
 */
export const imageFieldsSchema = z.strictObject({
  prompt: text('a text prompt')
    .trim()
    .min(1, { error: 'must not be empty: describe the image to generate' })
    .max(MAX_PROMPT_LENGTH, {
      error: (iss) =>
        `is too long (${(iss.input as string).length} characters, at most ${MAX_PROMPT_LENGTH}): FLUX reads only the first few hundred words`,
    }),
  model: text('a provider model id').min(1, { error: `must not be empty (the default is \`${DEFAULT_MODEL}\`)` }),
  width: dimension,
  height: dimension,
  steps: integer('a whole number from 1 to 50', 1, 50),
  guidance_scale: z.number({ error: (iss) => `must be a number (got ${show(iss.input)})` }),
  seed: integer('a whole number from 0 to 4294967295 (a fixed seed keeps the image reproducible)', 0, 4294967295),
  input: z
    .record(z.string(), z.unknown(), {
      error: (iss) => `must be a map of raw provider fields, like \`enable_safety_checker: true\` (got ${show(iss.input)})`,
    })
    .refine((input) => depth(input) <= MAX_INPUT_DEPTH, {
      error: `is nested too deeply (more than ${MAX_INPUT_DEPTH} levels): provider fields are flat values, lists or small maps`,
    }),
  image: text('a path to a local image, relative to the manifest').min(1, { error: 'must not be empty' }),
  alt: text('the alternative text'),
  format: oneOf(FORMATS),
  quality: integer('a whole number from 1 to 100', 1, 100),
  widths: z
    .array(integer('a whole number of pixels from 16 to 2048', 16, 2048), {
      error: (iss) => `must be a list of widths in pixels, like [480, 768] (got ${show(iss.input)})`,
    })
    .min(1, { error: 'must list at least one width, or be left out' }),
  placeholder: oneOf(PLACEHOLDERS),
}).partial()

export const FIELD_NAMES = Object.keys(imageFieldsSchema.shape) as (keyof typeof imageFieldsSchema.shape)[]

export const collectionSchema = z.strictObject({
  defaults: imageFieldsSchema.optional(),
  images: z.record(z.string(), imageFieldsSchema, {
    error: (iss) =>
      iss.input === undefined || iss.input === null
        ? 'is missing: a manifest with `defaults:` lists its entries under `images:`, like `banner: { prompt: … }`'
        : `must map entry names to image specs (got ${show(iss.input)})`,
  }),
})

/** An image spec as written in a manifest (every field optional). */
export type ImageFields = z.infer<typeof imageFieldsSchema>

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
