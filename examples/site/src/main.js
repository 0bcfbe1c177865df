import hero from './hero.images.yaml'
import gallery, { robot } from './gallery.images.yaml'

/** An <img> with its srcset, and the blur placeholder shown until the image has loaded. */
function picture(image, sizes) {
  const img = document.createElement('img')
  img.src = image.src
  if (image.srcset) {
    img.srcset = image.srcset
    img.sizes = sizes
  }
  img.width = image.width
  img.height = image.height
  img.alt = image.alt
  img.decoding = 'async'
  if (image.placeholder) {
    img.style.backgroundImage = `url("${image.placeholder}")`
    img.addEventListener('load', () => img.style.removeProperty('background-image'), { once: true })
  }
  return img
}

document.querySelector('#hero').append(picture(hero, '100vw'))
const grid = document.querySelector('#gallery')
for (const [name, image] of Object.entries(gallery)) {
  const figure = document.createElement('figure')
  const caption = document.createElement('figcaption')
  caption.textContent = `${name}${image === robot ? ' (also a named export)' : ''}: ${image.prompt}`
  figure.append(picture(image, '(max-width: 40rem) 100vw, 18rem'), caption)
  grid.append(figure)
}
