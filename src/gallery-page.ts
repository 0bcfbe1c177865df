/**
 * The gallery's page (see gallery.ts): static HTML and a small script that renders `api/manifests` (a `GalleryState`),
 * polls it every second while anything is being made, and posts `api/variants` and `api/pick`. URLs are relative to
 * the page (`<base>__imagegen/`), so it works under any `base`.
 */
import { DEFAULT_VARIANTS, MAX_VARIANTS } from './core/variants'
const SCRIPT = String.raw`
const DEFAULT_VARIANTS = ${DEFAULT_VARIANTS}, MAX_VARIANTS = ${MAX_VARIANTS}
const main = document.querySelector('main')
const notes = {}, counts = {}
let last = '', focusNext, timer
const esc = (t) => String(t).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';')
async function call(path, body) {
  const r = await fetch('api/' + path, body && { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
  const data = await r.json().catch(() => ({ error: r.status + ' ' + r.statusText }))
  if (!r.ok) throw new Error(data.error)
  return data
}
const detail = (x) => x.state + (x.error ? ': ' + x.error : x.state === 'missing' ? ' (' + x.reason + ')' : '')
function figure(x, e, caption, button) {
  const img = x.state === 'cached'
    ? '<img src="' + esc(x.src) + '" width="' + e.width + '" height="' + e.height + '" alt="' + esc(caption) + '">'
    : '<div class="none" style="aspect-ratio:' + e.width + '/' + e.height + '">' + esc(x.state) + '</div>'
  return '<figure>' + img + '<figcaption>' + esc(caption + ' · ' + detail(x)) + button + '</figcaption></figure>'
}
function entry(file, e, id) {
  const data = ' data-file="' + esc(file) + '" data-target="' + esc(e.target) + '" data-id="' + id + '"' + (e.name === undefined ? '' : ' data-entry="' + esc(e.name) + '"')
  const v = e.variants
  const ready = e.candidates.filter((c) => c.state === 'cached').length + (e.state === 'cached' ? 1 : 0)
  const status = [...new Set([notes[e.target], v && v.running ? 'making variants: ' + ready + ' of ' + v.count + ' ready' : v && v.error])].filter(Boolean).join(' · ')
  const current = figure(e, e, 'current · seed ' + e.seed, '')
  const others = e.candidates.map((c) => figure(c, e, c.number + ' · seed ' + c.seed,
    ' <button id="p-' + id + '-' + c.number + '" data-act="pick" data-seed="' + c.seed + '"' + data + ' aria-label="Use this: seed ' + c.seed + '">Use this</button>'))
  return '<article aria-labelledby="h-' + id + '"><h3 id="h-' + id + '">' + esc(e.target) + '</h3>' +
    '<div class="row">' + current + others.join('') + '</div>' +
    '<dl><dt>Prompt</dt><dd>' + esc(e.prompt) + '</dd><dt>Size</dt><dd>' + e.width + ' × ' + e.height + '</dd>' +
    '<dt>Seed</dt><dd>' + e.seed + (e.seedDerived ? ' (derived)' : '') + '</dd><dt>Key</dt><dd><code>' + e.key + '</code></dd></dl>' +
    '<p><label for="c-' + id + '">Candidates</label> <input id="c-' + id + '" type="number" min="1" max="' + MAX_VARIANTS + '" data-target="' + esc(e.target) + '" value="' + esc(counts[e.target] || DEFAULT_VARIANTS) + '"> ' +
    '<button id="v-' + id + '" data-act="variants"' + data + '>Variants</button></p>' +
    '<p role="status" id="s-' + id + '">' + esc(status) + '</p></article>'
}
async function refresh() {
  clearTimeout(timer)
  let s
  try {
    s = await call('manifests')
  } catch (error) {
    timer = setTimeout(refresh, 1000)
    return
  }
  let n = 0
  const html = (s.cannotGenerate ? '<p class="warn">Images cannot be generated now: ' + esc(s.cannotGenerate) + '.</p>' : '') +
    (s.manifests.length ? '' : '<p>No manifests (*.images.yaml) under the root.</p>') +
    s.manifests.map((m) => '<section><h2>' + esc(m.file) + '</h2>' + (m.error ? '<pre class="warn">' + esc(m.error) + '</pre>' : '') +
      m.entries.map((e) => entry(m.file, e, 'e' + n++)).join('') + '</section>').join('')
  if (html !== last) {
    last = html
    const focused = focusNext || (document.activeElement && document.activeElement.id)
    main.innerHTML = html
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus()
    focusNext = undefined
  }
  if (s.busy || /generating/.test(JSON.stringify(s.manifests))) timer = setTimeout(refresh, 1000)
}
main.addEventListener('input', (ev) => { if (ev.target.dataset.target) counts[ev.target.dataset.target] = ev.target.value })
main.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-act]')
  if (!b) return
  const { act, file, entry, target, seed, id } = b.dataset
  b.disabled = true
  delete notes[target]
  // focus stays on the entry's Variants button (a picked candidate's button goes away)
  const focus = 'v-' + id
  try {
    if (act === 'variants') await call('variants', { file, entry, count: Number(counts[target] || DEFAULT_VARIANTS) })
    else {
      const r = await call('pick', { file, entry, seed: Number(seed) })
      notes[target] = 'seed ' + r.previousSeed + ' → ' + r.seed + ': the manifest is updated'
    }
  } catch (error) {
    notes[target] = error.message
  }
  last = ''
  focusNext = focus
  refresh()
})
refresh()
`

/** The page: one HTML document with inline CSS and script, no other files. */
export function galleryPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>imagegen gallery</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
article{border-top:1px solid #ccc;padding:.5rem 0 1rem}
.row{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;width:200px}
figure:first-child{outline:3px solid #2a7;outline-offset:3px}
img,.none{display:block;width:100%;height:auto;background:#ddd}
.none{display:flex;align-items:center;justify-content:center;color:#555}
dl{display:grid;grid-template-columns:max-content 1fr;gap:0 1rem}dd{margin:0;word-break:break-all}
.warn,[role=status]{color:#a40;white-space:pre-wrap}
button{font:inherit;margin-top:.25rem}input{width:4em}
</style></head>
<body><h1>imagegen gallery</h1><main aria-live="off"></main>
<script type="module">${SCRIPT}</script>
</body></html>
`
}
