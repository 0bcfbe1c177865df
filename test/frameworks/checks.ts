/**
 * The two checks the framework harness makes of a running app (a production server or a dev
 * server): its server-rendered HTML, and the page in Chromium after hydration. Each returns the
 * problems it found (empty when all is well) for the test to assert.
 */
import type { Browser } from 'playwright-core'
import { fetchProblem, imageTags, parseSrcset, placeholderProblem, shown, tagUrls, urlProblem } from './harness'

export interface PageCheck {
  /** The server, `http://127.0.0.1:<port>`; the page is `/`. */
  origin: string
  /** How many `<img>` the page renders. */
  images: number
  /** Folders whose appearance in a URL means a filesystem path leaked into it. */
  leakable: string[]
}

/**
 * `GET /`, then every `<img>`/`<source>` `src` and `srcset` candidate: a URL of the app's own
 * server (see `urlProblem`) that answers 200 with an image; blur placeholders not empty.
 */
export async function htmlProblems(check: PageCheck, html: string): Promise<string[]> {
  const tags = imageTags(html)
  const images = tags.filter((t) => t.tag === 'img')
  const problems: string[] = []
  if (images.length !== check.images) problems.push(`expected ${check.images} <img> in the server-rendered HTML, found ${images.length}: ${images.map((t) => t.label).join(', ') || '(none)'}`)
  for (const tag of tags) {
    if (tag.tag === 'img' && tag.attrs.src === undefined) problems.push(`${tag.label} has no src`)
    const placeholder = tag.attrs.style ? placeholderProblem(tag.attrs.style) : undefined
    if (placeholder) problems.push(`${tag.label} ${placeholder}`)
    for (const { where, url } of tagUrls(tag)) {
      const problem = urlProblem(url, check.origin, check.leakable) ?? (await fetchProblem(url, check.origin))
      if (problem) problems.push(`${tag.label} ${where} ${shown(url)} ${problem}`)
    }
  }
  return problems
}

/**
 * Opens `/` in Chromium, waits for hydration (`html[data-hydrated]`), brings every image into
 * view; then every `<img>` must be complete and decoded at the intrinsic width of its current
 * source (as its `srcset` descriptor, `naturalWidth` and `width` say), and no request may have
 * failed. `context` holds the browser console, shown beside the problems.
 */
export async function browserProblems(browser: Browser, check: PageCheck): Promise<{ problems: string[]; context: string[] }> {
  const { origin } = check
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 }, deviceScaleFactor: 1 })
  const failed: string[] = []
  const context: string[] = []
  const isFavicon = (url: string) => /\/favicon\.(ico|svg|png)(\?|$)/.test(url)
  // A request the browser itself cancelled (net::ERR_ABORTED), e.g. Nuxt's
  // <link rel="prefetch" as="image"> racing the <img> for the same file, is no failure
  // when the same URL was loaded all the same; it is shown beside the failures.
  const aborted: string[] = []
  const loaded = new Set<string>()
  page.on('requestfailed', (request) => {
    const error = request.failure()?.errorText ?? 'unknown error'
    if (isFavicon(request.url())) return
    if (error === 'net::ERR_ABORTED') aborted.push(request.url())
    else failed.push(`request ${request.method()} ${request.url()} failed: ${error}`)
  })
  page.on('response', (response) => {
    if (response.status() < 400) loaded.add(response.url())
    else if (!isFavicon(response.url())) failed.push(`request ${response.request().method()} ${response.url()} answered ${response.status()}`)
  })
  page.on('console', (message) => {
    if ((message.type() === 'error' || message.type() === 'warning') && !isFavicon(message.location().url ?? '')) context.push(`console ${message.type()}: ${message.text()}`)
  })
  page.on('pageerror', (error) => context.push(`uncaught: ${error.message}`))
  try {
    const problems: string[] = []
    // A dev server compiles the client code on the first visit: the timeouts allow for it.
    await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 120_000 })
    try {
      await page.waitForSelector('html[data-hydrated]', { state: 'attached', timeout: 60_000 })
    } catch {
      problems.push('the page never hydrated (no html[data-hydrated] within 60 s)')
    }
    // Lazy images load once near the viewport: bring each into view, then wait for all.
    for (const img of await page.$$('img')) await img.scrollIntoViewIfNeeded().catch(() => {})
    await page
      .waitForFunction(() => [...(globalThis as any).document.images].every((img: any) => img.complete), undefined, { timeout: 15_000 })
      .catch(() => {})
    await page.waitForLoadState('networkidle', { timeout: 15_000 }).catch(() => {})
    const images: { label: string; src: string | null; srcset: string | null; currentSrc: string; complete: boolean; naturalWidth: number; width: string | null }[] = await page.$$eval('img', (imgs: any[]) =>
      imgs.map((img, i) => ({
        label: img.id ? `<img id="${img.id}">` : img.alt ? `<img alt="${img.alt}">` : `<img> #${i + 1}`,
        src: img.getAttribute('src'),
        srcset: img.getAttribute('srcset'),
        currentSrc: img.currentSrc,
        complete: img.complete,
        naturalWidth: img.naturalWidth,
        width: img.getAttribute('width'),
      })),
    )
    if (images.length !== check.images) problems.push(`expected ${check.images} <img> after hydration, found ${images.length}`)
    /** The file's own size, decoded alone (no srcset density correction). */
    const decode = (url: string) =>
      page.evaluate(async (u) => {
        const img = new (globalThis as any).Image()
        img.src = u
        try {
          await img.decode()
          return [img.naturalWidth, img.naturalHeight] as [number, number]
        } catch (error) {
          return String(error)
        }
      }, url)
    for (const image of images) {
      const where = `${image.label} (current source ${shown(image.currentSrc || image.src || '(none)')})`
      if (!image.complete || image.naturalWidth === 0) {
        problems.push(`${where} did not load: complete=${image.complete}, naturalWidth=${image.naturalWidth}`)
        continue
      }
      const urlIssue = urlProblem(image.currentSrc, origin, check.leakable)
      if (urlIssue) problems.push(`${where}: the current source ${urlIssue}`)
      const file = await decode(image.currentSrc)
      if (typeof file === 'string') {
        problems.push(`${where} shows, but its source does not decode on its own: ${file}`)
        continue
      }
      const candidate = parseSrcset(image.srcset ?? '').find((c) => new URL(c.url, `${origin}/`).href === image.currentSrc)
      const descriptor = candidate?.descriptor ?? ''
      if (/^\d+w$/.test(descriptor)) {
        // A width descriptor promises the file's width (naturalWidth itself is density-corrected by `sizes`).
        if (file[0] !== parseInt(descriptor)) problems.push(`${where}: its srcset says ${descriptor}, but the file is ${file[0]} px wide`)
      } else {
        const density = /^[\d.]+x$/.test(descriptor) ? parseFloat(descriptor) : 1
        const natural = Math.round(file[0] / density)
        if (image.naturalWidth !== natural) problems.push(`${where}: naturalWidth ${image.naturalWidth}, but its source is ${file[0]} px wide${density !== 1 ? ` at ${density}x` : ''}`)
        if (image.width !== null && Number(image.width) * density !== file[0]) problems.push(`${where}: the tag declares width="${image.width}"${density !== 1 ? ` at ${density}x` : ''}, but its source is ${file[0]} px wide`)
      }
    }
    for (const url of new Set(aborted)) {
      if (loaded.has(url)) context.push(`cancelled by the browser, loaded by another request: ${url}`)
      else problems.push(`request ${url} failed: net::ERR_ABORTED, and the file was never loaded`)
    }
    problems.push(...new Set(failed))
    return { problems, context: [...new Set(context)] }
  } finally {
    await page.close()
  }
}
