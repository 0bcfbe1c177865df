/**
 * Choosing an image: candidates of an entry that differ only in `seed`, the contact sheet that shows them, and
 * pinning the chosen seed into the manifest. Shared by `imagegen variants` / `imagegen pick`; nothing bundler-specific.
 */
import { isDeepStrictEqual } from 'node:util'
import type { Node, YAMLMap } from 'yaml'
import type { KeyedEntry } from './entries'
import { deriveSeed, keySpec, type PixelSpec } from './key'
import { yaml } from './manifest'

/** Candidates per entry by default (`imagegen variants`, the dev gallery), and at most. */
export const DEFAULT_VARIANTS = 4
export const MAX_VARIANTS = 64
/** The largest seed a manifest takes (`seed` in schema.ts): what `pick` accepts. */
export const MAX_SEED = 4294967295

/** The largest seed a candidate gets: 2³¹ − 1, inside the manifest's range (0–4294967295) and a signed 32-bit integer. */
export const MAX_VARIANT_SEED = 0x7fffffff

/**
 * The seed of the `n`-th derived candidate (n ≥ 1) of a spec, from everything that decides its pixels but the seed:
 * n = 1 is the seed an entry gets when it names none (`deriveSeed`); n ≥ 2 is `deriveSeed` of that spec with
 * `variant: n` added, shifted right by one bit (0 to `MAX_VARIANT_SEED`). The same spec always gives the same seeds.
 */
export function variantSeed(unseeded: Omit<PixelSpec, 'seed'>, n: number): number {
  if (n === 1) return deriveSeed(unseeded)
  const salted = { ...unseeded, variant: n }
  return deriveSeed(salted) >>> 1
}

/** One candidate of an entry: its 1-based number, its seed, and the entry keyed with that seed. */
export interface Candidate {
  number: number
  seed: number
  /** Candidate 1: the image the entry uses now. */
  current: boolean
  entry: KeyedEntry
}

/**
 * `count` candidates of `entry` (count ≥ 1) that differ only in `seed`. Candidate 1 is the entry as it is (its own
 * seed); the others take, in order, the seeds `variantSeed(spec, 1)`, `variantSeed(spec, 2)`, … that differ from it
 * and from each other. So the candidates of a spec are the same set before and after one of them is picked, and a
 * second run makes nothing new. Each is keyed as a manifest entry with that `seed:` would be (`keySpec`).
 */
export function candidatesOf(entry: KeyedEntry, count: number): Candidate[] {
  const { seed: current, ...unseeded } = entry.pixels
  const seeds = [current]
  for (let n = 1; seeds.length < count; n++) {
    const seed = variantSeed(unseeded, n)
    if (!seeds.includes(seed)) seeds.push(seed)
  }
  return seeds.map((seed, i) => {
    if (i === 0) return { number: 1, seed, current: true, entry }
    const spec = { ...entry.spec, seed }
    const { key, pixels } = keySpec(spec, entry.pixels.provider, entry.pixels.image)
    return { number: i + 1, seed, current: false, entry: { ...entry, spec, key, pixels, request: { ...entry.request, seed } } }
  })
}

/** A candidate as the contact sheet shows it. */
export interface SheetCandidate {
  number: number
  seed: number
  current: boolean
  /** `cached`, `generated`, `missing`, `failed`, … */
  state: string
  /** The image's path relative to the sheet's folder (forward slashes); undefined when there is no image. */
  src?: string
}

/** An entry as the contact sheet shows it. */
export interface SheetEntry {
  /** `<manifest>#<entry>` (the manifest alone for a single image), as `imagegen pick` takes it. */
  target: string
  prompt: string
  width: number
  height: number
  candidates: SheetCandidate[]
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

/**
 * The contact sheet: one self-contained HTML page (inline CSS, no script, no network) showing each entry's candidates
 * side by side with their numbers, seeds and states, and the `imagegen pick` command for each. Images are linked by
 * their relative `src`, so the page opens from disk.
 */
export function contactSheet(title: string, entries: readonly SheetEntry[]): string {
  const sections = entries.map(({ target, prompt, width, height, candidates }) => {
    const figures = candidates.map(({ number, seed, current, state, src }) => {
      const image = src
        ? `<img src="${escapeHtml(src.split('/').map(encodeURIComponent).join('/'))}" width="${width}" height="${height}" alt="candidate ${number}, seed ${seed}">`
        : `<div class="none" style="aspect-ratio:${width}/${height}">${escapeHtml(state)}</div>`
      const pick = `imagegen pick ${target} ${seed}`
      return `<figure${current ? ' class="current"' : ''}>${image}<figcaption><b>${number}</b> · seed ${seed}${current ? ' · current' : ''} · ${escapeHtml(state)}<code>${escapeHtml(pick)}</code></figcaption></figure>`
    })
    return `<section><h2>${escapeHtml(target)}</h2><p>${escapeHtml(prompt)} · ${width} × ${height}</p><div class="row">${figures.join('')}</div></section>`
  })
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
.row{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;max-width:260px}
figure.current{outline:3px solid #2a7;outline-offset:3px}
img,.none{display:block;width:100%;height:auto;background:#ddd}
.none{display:flex;align-items:center;justify-content:center;color:#555}
code{display:block;font-size:12px;user-select:all;word-break:break-all;margin-top:.25rem}
</style></head>
<body><h1>${escapeHtml(title)}</h1>
${sections.join('\n')}
</body></html>
`
}

/**
 * `text` (a manifest) with `seed: <seed>` in the entry `name` (the top level of a single-image manifest when
 * undefined): the seed's value replaced if the entry has one, else a line `seed: <seed>` added after its last field
 * (`, seed: <seed>` in a flow map). Every other byte stays as it was: comments, order, quotes, indentation, blank
 * lines. Where that edit cannot be made safely (aliases, an empty map), yaml's `Document.setIn` and `toString()` do
 * it, which keeps comments and order but may respace them. Throws when `name` is not an entry of the manifest.
 */
export function pinSeed(text: string, name: string | undefined, seed: number): string {
  const { isMap, parseDocument } = yaml() // loaded only to pick a seed, never on a warm build
  const doc = parseDocument(text)
  const path = name === undefined ? [] : ['images', name]
  const map = path.length === 0 ? doc.contents : doc.getIn(path, true)
  if (!isMap(map)) throw new Error(`no map at ${path.length ? path.join('.') : 'the top level'}`)
  const wanted = doc.toJS() as Record<string, unknown>
  const target = (name === undefined ? wanted : (wanted.images as Record<string, Record<string, unknown>>)[name]!) as Record<string, unknown>
  target.seed = seed
  const spliced = spliceSeed(text, map, seed)
  if (spliced !== undefined && isDeepStrictEqual(parseDocument(spliced).toJS(), wanted)) return spliced
  doc.setIn([...path, 'seed'], seed)
  return doc.toString({ lineWidth: 0 })
}

/** The text edit of `pinSeed`, or undefined where it does not apply. */
function spliceSeed(text: string, map: YAMLMap, seed: number): string | undefined {
  const range = (node: unknown) => (node as Node | null | undefined)?.range
  const { isScalar } = yaml()
  const existing = map.items.find((pair) => isScalar(pair.key) && pair.key.value === 'seed')
  const at = range(existing?.value)
  if (existing) return at ? `${text.slice(0, at[0])}${seed}${text.slice(at[1])}` : undefined
  const last = map.items.at(-1)
  const end = range(last?.value)?.[1] ?? range(last?.key)?.[1]
  const first = range(map.items[0]?.key)?.[0]
  if (end === undefined || first === undefined) return undefined
  if (map.flow) return `${text.slice(0, end)}, seed: ${seed}${text.slice(end)}`
  const eol = text.includes('\r\n') ? '\r\n' : '\n'
  const indent = ' '.repeat(first - (text.lastIndexOf('\n', first - 1) + 1))
  // after the last field's line (its comment included); a block scalar's range already ends past its newline
  if (text[end - 1] === '\n') return `${text.slice(0, end)}${indent}seed: ${seed}${eol}${text.slice(end)}`
  const lineEnd = text.indexOf('\n', end)
  if (lineEnd === -1) return `${text}${eol}${indent}seed: ${seed}`
  const cut = text[lineEnd - 1] === '\r' ? lineEnd - 1 : lineEnd
  return `${text.slice(0, cut)}${eol}${indent}seed: ${seed}${text.slice(cut)}`
}
