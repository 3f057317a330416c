import { ErrorCode, FtlError } from '../errors.js';

// Secure aggregation adds integers in the ring Z_{2^32} (Uint32Array arithmetic wraps mod 2^32), so a
// site's floats become fixed-point integers first. A word is read back as a signed 32-bit integer, which
// is exact as long as the true sum of the quantised values lies in [−2^31, 2^31): the scale is chosen so
// that no sum of clipped, weighted values can leave that interval, whoever drops out.

/** Words in the ring: 2^32 values, read back as signed 32-bit integers. */
export const RING_BITS = 32;
const HALF_RING = 2 ** 31;

/** How a site's floats become ring elements. */
export interface Quantization {
  /** R > 0: every value is clipped to [−R, R] before it is scaled. */
  clipRange: number;
  /** Integers per unit: a value v becomes round(weight · clip(v, R) · scale). */
  scale: number;
}

/** How a scaled value is rounded to an integer: to the nearest, or stochastically (unbiased) with uniform draws in [0, 1). */
export type Rounding = 'nearest' | { stochastic: () => number };

/**
 * The largest power of two `scale` for which a sum over `sites` sites of weighted, clipped, rounded values
 * cannot wrap: each site's |round(w·v·scale)| ≤ w·R·scale + 1, so the bound is
 * `totalWeight · R · scale + sites < 2^31` (with every weight 1: n·R·scale + n < 2^31, i.e. n·R·scale < 2^31
 * with one unit of rounding slack per site). A power of two keeps dequantisation exact in floating point.
 *
 * @throws FtlError(INVALID_CONFIG) when not even a scale of 2^-30 fits (R or the weights are absurdly large).
 * @example
 * ringScale({ clipRange: 1, totalWeight: 10, sites: 10 }); // 2^27: 10 · 1 · 2^27 + 10 < 2^31
 */
export function ringScale(o: { clipRange: number; totalWeight: number; sites: number }): number {
  const { clipRange, totalWeight, sites } = o;
  if (!(clipRange > 0) || !Number.isFinite(clipRange))
    throw new FtlError(ErrorCode.InvalidConfig, `clipRange must be a finite number > 0 (got ${clipRange})`);
  if (!(totalWeight > 0) || !Number.isFinite(totalWeight)) {
    throw new FtlError(ErrorCode.InvalidConfig, `the total weight must be a finite number > 0 (got ${totalWeight})`);
  }
  if (!Number.isSafeInteger(sites) || sites < 1) throw new FtlError(ErrorCode.InvalidConfig, `sites must be a positive integer (got ${sites})`);
  const room = HALF_RING - 1 - sites;
  const exponent = Math.floor(Math.log2(room / (totalWeight * clipRange)));
  let scale = 2 ** exponent;
  // log2 may round up at an exact power; step down until the bound holds.
  while (totalWeight * clipRange * scale > room) scale /= 2;
  if (!(scale >= 2 ** -30)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `secure aggregation cannot sum ${sites} sites of total weight ${totalWeight} within ±${clipRange} in 32 bits; lower clipRange`,
    );
  }
  return scale;
}

/**
 * Checks that a sum over `sites` sites with these weights cannot wrap at this scale: Σw·R·scale + sites < 2^31.
 *
 * @throws FtlError(INVALID_CONFIG) naming the bound.
 */
export function checkNoWrap(q: Quantization, o: { totalWeight: number; sites: number }): void {
  const worst = o.totalWeight * q.clipRange * q.scale + o.sites;
  if (!(worst < HALF_RING)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `a sum of ${o.sites} quantised inputs could reach ${worst} and wrap in 32 bits (needs Σweight·R·scale + sites < 2^31); lower the scale or clipRange`,
    );
  }
}

/**
 * Clips each value to [−R, R], multiplies it by `weight`, scales and rounds it, and stores it in the ring
 * (two's complement). A value that is NaN is refused: it has no place in a sum.
 *
 * @throws FtlError(NON_FINITE_WEIGHTS) on NaN.
 * @example
 * const words = quantize(delta, { clipRange: 1, scale: 2 ** 24 }, { weight: 120 });
 */
export function quantize(values: ArrayLike<number>, q: Quantization, options: { weight?: number; rounding?: Rounding } = {}): Uint32Array {
  const weight = options.weight ?? 1;
  const rounding = options.rounding ?? 'nearest';
  const { clipRange: r, scale } = q;
  const out = new Uint32Array(values.length);
  const factor = weight * scale;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) throw new FtlError(ErrorCode.NonFiniteWeights, `value ${i} is NaN; secure aggregation can only sum finite values`);
    const scaled = Math.min(r, Math.max(-r, v)) * factor;
    const n = rounding === 'nearest' ? Math.round(scaled) : Math.floor(scaled + rounding.stochastic());
    // Assigning to a Uint32Array reduces mod 2^32: −1 is stored as 2^32 − 1.
    out[i] = n;
  }
  return out;
}

/**
 * The float sum a ring sum stands for: each word read as a signed 32-bit integer, divided by the scale.
 * Exact for sums the scale was chosen for ({@link ringScale}); the error against the float sum of the
 * clipped inputs is at most sites/scale per coordinate (1/scale per site for stochastic rounding, 1/(2·scale)
 * for nearest).
 */
export function dequantizeSum(sum: Uint32Array, scale: number): Float64Array {
  const out = new Float64Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = (sum[i]! | 0) / scale;
  return out;
}

/** Adds `b` into `a` in the ring (mod 2^32), in place; returns `a`. */
export function addInto(a: Uint32Array, b: Uint32Array): Uint32Array {
  if (a.length !== b.length) throw new FtlError(ErrorCode.InternalError, `cannot add ring vectors of ${a.length} and ${b.length} words`);
  for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
  return a;
}

/** Subtracts `b` from `a` in the ring (mod 2^32), in place; returns `a`. */
export function subtractFrom(a: Uint32Array, b: Uint32Array): Uint32Array {
  if (a.length !== b.length) throw new FtlError(ErrorCode.InternalError, `cannot subtract ring vectors of ${a.length} and ${b.length} words`);
  for (let i = 0; i < a.length; i++) a[i] = a[i]! - b[i]!;
  return a;
}
