import hero from './hero.images.yaml'
import art from './art.images.yaml'

const escape = (value) => String(value).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

/** The page's markup, the same on the server and in the browser. */
export function render() {
  const { banner, avatar } = art
  return `<main>
  <h1>Vite SSR</h1>
  <img id="hero" src="${escape(hero.src)}" srcset="${escape(hero.srcset ?? '')}" sizes="${hero.width}px" width="${hero.width}" height="${hero.height}" alt="${escape(hero.alt)}">
  <img id="banner" src="${escape(banner.src)}" width="${banner.width}" height="${banner.height}" alt="${escape(banner.alt)}" style="background-image: url(&quot;${escape(banner.placeholder ?? '')}&quot;); background-size: cover">
  <img id="avatar" src="${escape(avatar.src)}" width="${avatar.width}" height="${avatar.height}" alt="${escape(avatar.alt)}">
</main>`
}
