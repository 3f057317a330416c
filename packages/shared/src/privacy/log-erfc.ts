// log erfc(x) to double precision over the whole real line. The fractional-order series of the sampled
// Gaussian mechanism weighs each term by a Gaussian tail, ½·erfc((i − z₀)/(σ√2)), whose argument reaches
// hundreds; erfc itself underflows past x ≈ 27, so the tail is kept as log erfcx(x) − x², with
// erfcx(x) = e^(x²)·erfc(x) from W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
// approximations for the error function", Math. Comp. 23, 1969: the coefficients of his CALERF), which
// give erf near 0 and erfcx directly beyond, each to about 1e-16 relative.

// The coefficients are Cody's, written as the doubles they round to.
// erf(x) for |x| ≤ 0.46875: x·A(x²)/B(x²).
const A = [3.1611237438705655, 113.86415415105016, 377.485237685302, 3209.3775891384694, 0.18577770618460315];
const B = [23.601290952344122, 244.02463793444417, 1282.6165260773723, 2844.236833439171];
// erfcx(x) for 0.46875 < x ≤ 4: C(x)/D(x).
const C = [
  0.5641884969886701, 8.883149794388377, 66.11919063714163, 298.6351381974001, 881.952221241769, 1712.0476126340707, 2051.0783778260716,
  1230.3393547979972, 2.1531153547440383e-8,
];
const D = [
  15.744926110709835, 117.6939508913125, 537.1811018620099, 1621.3895745666903, 3290.7992357334597, 4362.619090143247, 3439.3676741437216,
  1230.3393548037495,
];
// erfcx(x) for x > 4: (1/√π − P(1/x²)/Q(1/x²)/x²)/x.
const P = [0.30532663496123236, 0.36034489994980445, 0.12578172611122926, 0.016083785148742275, 0.0006587491615298378, 0.016315387137302097];
const Q = [2.568520192289822, 1.8729528499234604, 0.5279051029514285, 0.06051834131244132, 0.0023352049762686918];
const ONE_OVER_SQRT_PI = 0.5641895835477563;
const SMALL = 0.46875;

/** erf(x) for |x| ≤ 0.46875. */
function erfSmall(x: number): number {
  const z = x * x;
  let num = A[4]! * z;
  let den = z;
  for (let i = 0; i < 3; i++) {
    num = (num + A[i]!) * z;
    den = (den + B[i]!) * z;
  }
  return (x * (num + A[3]!)) / (den + B[3]!);
}

/** e^(x²)·erfc(x) for x > 0.46875. */
function erfcxLarge(x: number): number {
  if (x <= 4) {
    let num = C[8]! * x;
    let den = x;
    for (let i = 0; i < 7; i++) {
      num = (num + C[i]!) * x;
      den = (den + D[i]!) * x;
    }
    return (num + C[7]!) / (den + D[7]!);
  }
  const z = 1 / (x * x);
  let num = P[5]! * z;
  let den = z;
  for (let i = 0; i < 4; i++) {
    num = (num + P[i]!) * z;
    den = (den + Q[i]!) * z;
  }
  return (ONE_OVER_SQRT_PI - (z * (num + P[4]!)) / (den + Q[4]!)) / x;
}

/**
 * log(erfc(x)), finite for every finite x: ≈ −x² − log(x√π) far in the right tail, → log 2 in the left.
 *
 * @example
 * logErfc(30); // −903.7…, where Math.log of erfc(30) would be log(0) = −∞
 */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (Math.abs(x) <= SMALL) return Math.log1p(-erfSmall(x));
  if (x > 0) return x === Number.POSITIVE_INFINITY ? Number.NEGATIVE_INFINITY : Math.log(erfcxLarge(x)) - x * x;
  // erfc(x) = 2 − erfc(−x); the exponential underflows to 0 harmlessly once x < −27.
  return x === Number.NEGATIVE_INFINITY ? Math.LN2 : Math.log(2 - erfcxLarge(-x) * Math.exp(-x * x));
}
