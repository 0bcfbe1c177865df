type Undici = typeof import('undici')

let loading: Promise<Undici> | undefined

/** undici, loaded the first time a request is made: a build with every image cached never needs it. */
export function loadUndici(): Promise<Undici> {
  loading ??= import('undici')
  return loading
}
