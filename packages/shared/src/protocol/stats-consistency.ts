// The consistency of a site's channel statistics is part of the `ChannelStats` schema, so it lives with
// the protocol; it takes the statistics' shape rather than the schema's type so the schema can use it.

/** Per-channel sums, sums of squares, minima and maxima over `count` values, as in `ChannelStats`. */
export interface ChannelSummary {
  count: number;
  sum: readonly number[];
  sumSquares: readonly number[];
  min: readonly number[];
  max: readonly number[];
}

// Relative slack for the consistency checks: the sums are float64 accumulations of float32 values, so
// an honest site's mean can stray from [min, max] and its variance below 0 by rounding only.
const SLACK = 1e-6;

/**
 * Why these statistics cannot describe any set of values (a minimum above the maximum, a mean outside
 * [min, max], a negative variance, more energy than `count` values within [min, max] can have), or
 * undefined when they can. Lengths, finiteness and the count are checked too.
 */
export function statsInconsistency(s: ChannelSummary): string | undefined {
  const c = s.sum.length;
  const lengths = [s.sum, s.sumSquares, s.min, s.max].map((a) => a.length);
  if (c === 0 || lengths.some((l) => l !== c)) return `sum, sumSquares, min and max must have one value per channel each (got ${lengths.join('/')})`;
  const n = s.count;
  if (!Number.isSafeInteger(n) || n < 1) return `count must be a positive integer (got ${n})`;
  for (let k = 0; k < c; k++) {
    const [sum, sq, lo, hi] = [s.sum[k]!, s.sumSquares[k]!, s.min[k]!, s.max[k]!];
    if (![sum, sq, lo, hi].every(Number.isFinite)) return `channel ${k} has a value that is not finite`;
    if (lo > hi) return `channel ${k} has min ${lo} > max ${hi}`;
    const mean = sum / n;
    const spread = SLACK * Math.max(Math.abs(lo), Math.abs(hi)) + Number.MIN_VALUE;
    if (mean < lo - spread || mean > hi + spread) return `channel ${k} has mean ${mean} outside [min ${lo}, max ${hi}]`;
    const squareOfSum = (sum * sum) / n;
    if (sq < squareOfSum * (1 - SLACK) - Number.MIN_VALUE)
      return `channel ${k} has sumSquares ${sq} < sum²/count ${squareOfSum} (a negative variance)`;
    const most = n * Math.max(lo * lo, hi * hi);
    if (sq > most * (1 + SLACK) + Number.MIN_VALUE) return `channel ${k} has sumSquares ${sq} > count·max(min², max²) ${most}`;
  }
  return undefined;
}
