export { render } from './app.js'
