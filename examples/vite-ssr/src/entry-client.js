import { render } from './app.js'

// "Hydration" the way frameworks do it: keep the server's markup, attach to it, and warn
// (as React, Vue and Svelte do) when the server rendered something else than the client would.
const app = document.getElementById('app')
const expected = document.createElement('div')
expected.innerHTML = render()
const server = [...app.querySelectorAll('img')]
for (const [i, img] of [...expected.querySelectorAll('img')].entries()) {
  if (server[i]?.getAttribute('src') !== img.getAttribute('src')) {
    console.warn(`hydration mismatch on <img id="${img.id}">: server src ${server[i]?.getAttribute('src')}, client src ${img.getAttribute('src')}`)
  }
}
document.documentElement.dataset.hydrated = 'true'
