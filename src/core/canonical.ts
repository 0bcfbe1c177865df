/**
 * One serialization per value: object keys sorted at every depth, `undefined`
 * dropped, `-0` written as `0`, non-finite numbers refused. Two specs that mean
 * the same thing serialize to the same bytes whatever order YAML gave them in.
 */
export function canonicalJSON(value: unknown): string {
  if (value === null) return 'null'
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`cannot serialize the number ${value}`)
      return JSON.stringify(Object.is(value, -0) ? 0 : value)
    case 'string':
    case 'boolean':
      return JSON.stringify(value)
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item) => canonicalJSON(item ?? null)).join(',')}]`
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJSON(v)}`).join(',')}}`
    }
    default:
      throw new TypeError(`cannot serialize a ${typeof value}`)
  }
}
