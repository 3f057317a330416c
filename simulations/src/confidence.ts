/**
 * Two-sided 95% quantiles of Student's t for 1–30 degrees of freedom (beyond that the normal 1.96 is
 * within 2%): what turns a handful of seeds into an honest interval rather than a point.
 */
const T95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08,
  2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** A mean with the half-width of its 95% confidence interval (NaN with fewer than two values). */
export interface MeanInterval {
  mean: number;
  half: number;
  n: number;
}

/**
 * The mean of `values` and the half-width of its 95% t-interval, mean ± t(0.975, n−1) · s/√n.
 *
 * @example
 * meanInterval([0.91, 0.93, 0.92]); // { mean: 0.92, half: 0.0248…, n: 3 }
 */
export function meanInterval(values: readonly number[]): MeanInterval {
  const n = values.length;
  const mean = n > 0 ? values.reduce((a, v) => a + v, 0) / n : NaN;
  if (n < 2) return { mean, half: NaN, n };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  const t = T95[n - 2] ?? 1.96;
  return { mean, half: (t * Math.sqrt(variance)) / Math.sqrt(n), n };
}

/** `92.00% ± 2.48` (percentages), or the mean alone when there is one value. */
export function formatPercentInterval(m: MeanInterval): string {
  if (!Number.isFinite(m.mean)) return '–';
  const mean = `${(m.mean * 100).toFixed(2)}%`;
  return Number.isFinite(m.half) ? `${mean} ± ${(m.half * 100).toFixed(2)}` : mean;
}
