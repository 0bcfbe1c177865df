// The bench's projects, written into a temp folder: manifests, sites, their entry code.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

export function writeFiles(root, files) {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content)
  }
}

const SUBJECTS = ['a lighthouse', 'a fox in snow', 'a paper-cut skyline', 'rolling hills', 'a robot mascot', 'a tea house', 'a koi pond', 'a desert road',
  'a mountain lake', 'a city at night', 'an old library', 'a sailing boat', 'a cactus garden', 'a snowy cabin', 'a hot air balloon', 'a bamboo forest']
const STYLES = ['watercolor', 'flat vector art', 'linocut print', 'soft 3D render', 'gouache painting', 'isometric illustration']

/** A prompt of realistic length, different for every (group, index). */
export const prompt = (group, i) =>
  `${STYLES[(group + i) % STYLES.length]} of ${SUBJECTS[(group * 7 + i) % SUBJECTS.length]}, scene ${group}-${i}, golden hour light, gentle grain, muted palette`

/**
 * A collection manifest: `count` entries named img0…, each with its own prompt and alt text.
 * `defaults` are YAML lines under `defaults:`.
 */
export function collection(group, count, defaults = ['width: 1024', 'height: 1024']) {
  const entries = Array.from({ length: count }, (_, i) => `  img${i}:\n    prompt: ${prompt(group, i)}\n    alt: Illustration ${group}-${i}\n`)
  return `defaults:\n${defaults.map((l) => `  ${l}\n`).join('')}images:\n${entries.join('')}`
}

export const INDEX_HTML = '<!doctype html>\n<html><head><meta charset="utf-8"><title>bench</title></head><body><script type="module" src="/src/main.js"></script></body></html>\n'

/** The same page code for every site: one <img> per image, with srcset when there is one. */
export const SHOW_IMAGES = `for (const image of images) {
  const img = new Image(image.width, image.height)
  img.src = image.src
  img.alt = image.alt ?? ''
  if (image.srcset) img.srcset = image.srcset
  document.body.append(img)
}
`

/** A site whose main.js imports every manifest of `manifests` (paths relative to src/). */
export function manifestSite(manifests) {
  const imports = manifests.map((m, i) => `import m${i} from './${m}'`).join('\n')
  return `${imports}\nconst images = [${manifests.map((_, i) => `m${i}`).join(', ')}].flatMap((m) => Object.values(m))\n${SHOW_IMAGES}`
}

/** A site whose main.js imports files as ordinary static assets; `images`: { file, width, height, alt }. */
export function staticSite(images) {
  const imports = images.map((image, i) => `import a${i} from './${image.file}'`).join('\n')
  const values = images.map((image, i) => `  { src: a${i}, width: ${image.width}, height: ${image.height}, alt: ${JSON.stringify(image.alt)} },`).join('\n')
  return `${imports}\nconst images = [\n${values}\n]\n${SHOW_IMAGES}`
}

/** A site with vite-imagetools: one import per image, both widths in WebP, as a <picture> description. */
export function imagetoolsSite(files, widths, quality) {
  const query = `w=${widths.join(';')}&format=webp&quality=${quality}&as=picture`
  const imports = files.map((file, i) => `import p${i} from './${file}?${query}'`).join('\n')
  return `${imports}\nconst images = [${files.map((_, i) => `p${i}`).join(', ')}].map((p) => ({ src: p.img.src, width: p.img.w, height: p.img.h, srcset: p.sources.webp }))\n${SHOW_IMAGES}`
}
