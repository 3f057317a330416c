// Distributed noise for client-level DP under secure aggregation: the coordinator never sees a site's
// change, so it cannot add the round's Gaussian noise to their sum itself. Each site adds a share instead,
// sized so that any sum the coordinator can unmask, which holds at least t inputs, carries at least the
// whole noise N(0, (z·S)²) on every value.

/**
 * The standard deviation of one site's share of the round's noise: z·S/√t, so that t shares add up to
 * N(0, (z·S)²) and more survivors only add more noise.
 *
 * @example
 * noiseShareStd({ noiseMultiplier: 1, clipNorm: 0.5 }, 7); // 0.189: seven sites' shares make N(0, 0.5²)
 */
export function noiseShareStd(dp: { noiseMultiplier: number; clipNorm: number }, threshold: number): number {
  return (dp.noiseMultiplier * dp.clipNorm) / Math.sqrt(threshold);
}
