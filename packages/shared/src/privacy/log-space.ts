// Arithmetic on numbers kept as their natural logarithm. The moments of the sampled Gaussian mechanism
// run to e^(α²/2σ²) and beyond, far past what a double holds, while the privacy loss is their logarithm
// divided by α − 1; summing them as logarithms keeps both ends finite. Zero is −∞ here.

/** log(eˣ + eʸ), without forming eˣ or eʸ. */
export function logAdd(x: number, y: number): number {
  const hi = Math.max(x, y);
  const lo = Math.min(x, y);
  if (lo === Number.NEGATIVE_INFINITY || hi === Number.POSITIVE_INFINITY) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/**
 * log(eˣ − eʸ) for x ≥ y; −∞ when they are equal. A y above x (a difference that would be negative)
 * is a caller's bug, since every quantity here is a probability or a moment.
 */
export function logSub(x: number, y: number): number {
  if (y > x) throw new RangeError(`logSub: log(e^${x} − e^${y}) is the log of a negative number`);
  if (y === Number.NEGATIVE_INFINITY || x === Number.POSITIVE_INFINITY) return x;
  if (x === y) return Number.NEGATIVE_INFINITY;
  // eˣ − eʸ = eʸ(e^(x−y) − 1); past x − y ≈ 37 the −1 is below a double's precision.
  const d = x - y;
  return d > 40 ? x + Math.log1p(-Math.exp(-d)) : y + Math.log(Math.expm1(d));
}

/** log(eˣ − 1) for x > 0: the log of e^((i²−i)/2σ²) − 1, accurate both for tiny x (huge σ) and huge x. */
export function logExpm1(x: number): number {
  return x > 40 ? x + Math.log1p(-Math.exp(-x)) : Math.log(Math.expm1(x));
}

/** log(1 + eˣ) (softplus), for the log of 1 + something held as its log. */
export function log1pExp(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/**
 * A running sum of signed terms each given as (sign, log |term|), for series whose coefficients change
 * sign (the binomial series of a fractional order). The partial sums it is used on stay positive; a
 * negative one is reported as NaN rather than hidden.
 */
export class SignedLogSum {
  private logPositive = Number.NEGATIVE_INFINITY;
  private logNegative = Number.NEGATIVE_INFINITY;

  /** Adds sign·e^(logAbs). */
  add(sign: number, logAbs: number): void {
    if (sign > 0) this.logPositive = logAdd(this.logPositive, logAbs);
    else if (sign < 0) this.logNegative = logAdd(this.logNegative, logAbs);
  }

  /** log of the sum; NaN when the negative terms outweigh the positive ones. */
  get log(): number {
    return this.logNegative > this.logPositive ? Number.NaN : logSub(this.logPositive, this.logNegative);
  }
}
