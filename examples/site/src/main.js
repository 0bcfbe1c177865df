import hero from './hero.images.yaml'
import gallery, { robot } from './gallery.images.yaml'

function picture(image) {
  const img = document.createElement('img')
  img.src = image.src
  img.width = image.width
  img.height = image.height
  img.alt = image.alt
  img.loading = 'lazy'
  img.decoding = 'async'
  return img
}

document.querySelector('#hero').append(picture(hero))
const grid = document.querySelector('#gallery')
for (const [name, image] of Object.entries(gallery)) {
  const figure = document.createElement('figure')
  const caption = document.createElement('figcaption')
  caption.textContent = `${name}${image === robot ? ' (also a named export)' : ''}: ${image.prompt}`
  figure.append(picture(image), caption)
  grid.append(figure)
}
