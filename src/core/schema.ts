import { createRequire } from 'node:module'
import type { z as Zod } from 'zod'

const DEFAULT_MODEL = 'black-forest-labs/flux-schnell'
const MAX_PROMPT_LENGTH = 10_000
const MAX_INPUT_DEPTH = 8

function depth(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  return 1 + Object.values(value).reduce((deepest: number, child) => Math.max(deepest, depth(child)), 0)
}

/** Every field an image spec may have, in the order messages list them. */
/** Raw `input` fields the spec owns (the service's body takes them from the spec), and ones that multiply the bill unless 1. */
export const SPEC_FIELDS = new Set(['model', 'prompt', 'width', 'height', 'seed', 'steps', 'guidance_scale'])
export const COUNT_FIELDS = new Set(['num_images', 'num_outputs', 'batch_size', 'n', 'samples'])

export const FIELD_NAMES = ['prompt', 'model', 'width', 'height', 'steps', 'guidance_scale', 'seed', 'input', 'image', 'alt', 'format', 'quality', 'widths', 'placeholder'] as const
type FieldName = (typeof FIELD_NAMES)[number]

/**
 * The manifest schemas, made on first use: `imageFields`, every field an image spec may have, each optional
 * (`defaults` may set any of them, and the required ones are checked after `defaults` are merged under an entry);
 * `collection`, `defaults:` and `images:`. zod is loaded then, not before: a build whose manifests are all in the
 * parsed store never loads it.
 */
export const schemas = () => (made ??= makeSchemas())
let made: ReturnType<typeof makeSchemas> | undefined

function makeSchemas() {
  const { z } = createRequire(import.meta.url)('zod') as typeof import('zod')
  const show = (value: unknown): string =>
    typeof value === 'string' || (value !== null && typeof value === 'object') ? JSON.stringify(value) : String(value)

  const mustBe = (rule: string) => ({ error: (issue: { input?: unknown }) => `must be ${rule} (got ${show(issue.input)})` })

  const integer = (rule: string, min: number, max: number) =>
    z.number(mustBe(rule)).int(mustBe(rule)).min(min, mustBe(`at least ${min}`)).max(max, mustBe(`at most ${max}`))

  const dimension = integer('a whole number of pixels from 64 to 2048, a multiple of 16', 64, 2048).multipleOf(16, {
    error: (iss) => {
      const lower = Math.max(64, Math.floor((iss.input as number) / 16) * 16)
      return `must be a multiple of 16 (got ${iss.input}): use ${lower} or ${Math.min(2048, lower + 16)}`
    },
  })

  const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
    z.enum(values, mustBe(`one of ${values.map((v) => `\`${v}\``).join(', ')}`))

  const imageFields = z.strictObject({
    prompt: z
      .string(mustBe('a text prompt'))
      .trim()
      .min(1, { error: 'must not be empty: describe the image to generate' })
      .max(MAX_PROMPT_LENGTH, {
        error: (iss) =>
          `is too long (${(iss.input as string).length} characters, at most ${MAX_PROMPT_LENGTH}): FLUX reads only the first few hundred words`,
      }),
    model: z.string(mustBe('a provider model id')).min(1, { error: `must not be empty (the default is \`${DEFAULT_MODEL}\`)` }),
    width: dimension,
    height: dimension,
    steps: integer('a whole number from 1 to 50', 1, 50),
    guidance_scale: z.number(mustBe('a number')),
    seed: integer('a whole number from 0 to 4294967295 (a fixed seed keeps the image reproducible)', 0, 4294967295),
    input: z
      .record(z.string(), z.unknown(), mustBe('a map of raw provider fields, like `enable_safety_checker: true`'))
      .refine((input) => depth(input) <= MAX_INPUT_DEPTH, {
        error: `is nested too deeply (more than ${MAX_INPUT_DEPTH} levels): provider fields are flat values, lists or small maps`,
      })
      .superRefine((input, ctx) => {
        for (const field of Object.keys(input)) {
          const why = SPEC_FIELDS.has(field)
            ? `would override the spec's own \`${field}\`, which the key, the size check and the bill are made from: set \`${field}\` itself`
            : COUNT_FIELDS.has(field) && input[field] !== 1 && `would ask for several images, billed as many while counted as one: one spec is one image (use more entries)`
          if (why) ctx.addIssue({ code: 'custom', path: [field], message: why })
        }
      }),
    image: z.string(mustBe('a path to a local image, relative to the manifest')).min(1, { error: 'must not be empty' }),
    alt: z.string(mustBe('the alternative text')),
    format: oneOf(['webp', 'avif', 'png', 'jpeg', 'original']),
    quality: integer('a whole number from 1 to 100', 1, 100),
    widths: z
      .array(integer('a whole number of pixels from 16 to 2048', 16, 2048), mustBe('a list of widths in pixels, like [480, 768]'))
      .min(1, { error: 'must list at least one width, or be left out' }),
    placeholder: oneOf(['blur', 'none']),
  } satisfies Record<FieldName, unknown>).partial()

  const collection = z.strictObject({
    defaults: imageFields.optional(),
    images: z.record(z.string(), imageFields, {
      error: (iss) =>
        iss.input === undefined || iss.input === null
          ? 'is missing: a manifest with `defaults:` lists its entries under `images:`, like `banner: { prompt: … }`'
          : `must map entry names to image specs (got ${show(iss.input)})`,
    }),
  })
  return { imageFields, collection }
}

/** An image spec as written in a manifest (every field optional). */
export type ImageFields = Zod.infer<ReturnType<typeof schemas>['imageFields']>

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
