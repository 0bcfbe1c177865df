/**
 * Edits between `a` and `b` by optimal string alignment: an insertion, a deletion, a substitution or a swap of two
 * neighbours (`fromat` → `format`) each count 1.
 */
function distance(a: string, b: string): number {
  // rows i-2, i-1 and i of the (a.length + 1) × (b.length + 1) table
  let before: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, before[j - 2]! + 1)
    }
    ;[before, previous] = [previous, row]
  }
  return previous[b.length]!
}

/** The closest candidate (the first of equals), when it is close enough to be a likely typo. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const distances = candidates.map((candidate) => distance(input.toLowerCase(), candidate.toLowerCase()))
  const nearest = Math.min(...distances)
  return nearest <= Math.max(2, Math.floor(input.length / 3)) ? candidates[distances.indexOf(nearest)] : undefined
}
