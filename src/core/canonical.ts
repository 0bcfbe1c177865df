/**
 * One serialization per value: object keys sorted at every depth, `undefined`
 * dropped, `-0` written as `0`, non-finite numbers refused. Two specs that mean
 * the same thing serialize to the same bytes whatever order YAML gave them in.
 */
export function canonicalJSON(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`cannot serialize the number ${value}`)
  if (value === null || ['number', 'string', 'boolean'].includes(typeof value)) return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJSON(item ?? null)).join(',')}]`
  if (typeof value !== 'object') throw new TypeError(`cannot serialize a ${typeof value}`)
  const record = value as Record<string, unknown>
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJSON(record[k])}`).join(',')}}`
}
