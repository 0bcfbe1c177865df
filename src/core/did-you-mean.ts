function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/** The closest candidate (the first of equals), when it is close enough to be a likely typo. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const distances = candidates.map((candidate) => distance(input.toLowerCase(), candidate.toLowerCase()))
  const nearest = Math.min(...distances)
  return nearest <= Math.max(2, Math.floor(input.length / 3)) ? candidates[distances.indexOf(nearest)] : undefined
}
