// Medians and the formatting of the table. Every cell is "median (min–max)" over the runs.

export function summary(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length, values }
}

export const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
export const millis = (ms) => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`
export const mebibytes = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`
export const micros = (ms) => `${(ms * 1000).toFixed(1)} µs`

/** `median (min–max)` in the unit of `format`; a single run is shown alone. */
export function cell(s, format) {
  if (!s) return '—'
  if (s.n === 1) return `${format(s.median)} (n=1)`
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`
}

export const ratio = (a, b) => (a / b).toFixed(2)

/** Ratio of medians, with the spread of the paired per-run ratios when runs were paired. */
export function ratioCell(a, b) {
  const r = a.median / b.median
  if (a.n > 1 && a.n === b.n) {
    const paired = a.values.map((v, i) => v / b.values[i]).sort((x, y) => x - y)
    return `**${r.toFixed(2)}** (${paired[0].toFixed(2)}–${paired[paired.length - 1].toFixed(2)})`
  }
  return `**${r.toFixed(2)}**`
}

export function markdownTable(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

/** Met when the ratio as printed (two decimals) is within the target: the table and its verdict agree. */
export const verdict = (ratioValue, target) => (Number(ratioValue.toFixed(2)) <= target ? 'met' : '**missed**')
