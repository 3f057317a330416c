import { ErrorCode, FtlError } from '../errors.js';
import { eventLoopYielder } from '../event-loop.js';
import type { Weights } from '../codec/weights.js';
import { linearOutputLayer } from './head.js';

/**
 * How far the pooled covariance is pulled towards a multiple of the identity:
 * Σ = (1 − γ)·C + γ·(tr C / d)·I. With a few hundred images and a few hundred feature values C is singular
 * or nearly so; γ = 0.3 scored best or within half a point of the best of {0.1, 0.3, 0.5, 0.8} on both
 * low-data tasks of the committed backbones (`docs/results.md`, "A discriminant head").
 */
export const DISCRIMINANT_SHRINKAGE = 0.3;

/**
 * Within-class scatter of feature vectors, Σ_c Σ_{i∈c} (x_i − m_c)(x_i − m_c)ᵀ about the class means `m_c`
 * of the same vectors: what one site sends for a discriminant head (d × d values, row-major, float64).
 * O(n·d²): it gives the event loop a turn now and then, so a site keeps answering pings meanwhile.
 *
 * @param features n × d values, row-major. @param labels n class indices. @param means classes × d values.
 */
export async function withinClassScatter(features: Float32Array, labels: Int32Array, means: Float64Array, d: number): Promise<Float64Array> {
  const scatter = new Float64Array(d * d);
  const v = new Float64Array(d);
  const breathe = eventLoopYielder();
  for (let i = 0; i < labels.length; i++) {
    await breathe();
    const c = labels[i]!;
    for (let j = 0; j < d; j++) v[j] = features[i * d + j]! - means[c * d + j]!;
    for (let a = 0; a < d; a++) {
      const va = v[a]!;
      if (va === 0) continue;
      const row = a * d;
      for (let b = a; b < d; b++) scatter[row + b]! += va * v[b]!;
    }
  }
  // Only the upper triangle was summed; mirror it.
  for (let a = 0; a < d; a++) for (let b = a + 1; b < d; b++) scatter[b * d + a] = scatter[a * d + b]!;
  return scatter;
}

/**
 * Solves A·X = B for a symmetric positive definite `A` (d × d, row-major) and `columns` right-hand sides
 * (B: d × columns, row-major) by Cholesky factorisation, in float64. O(d³/3), seconds for d in the
 * thousands: it calls `breathe` before each row (by default: an event-loop turn every 50 ms), so a
 * coordinator keeps serving its sockets meanwhile.
 *
 * @throws FtlError(INVALID_CONFIG) when A is not positive definite (a pivot ≤ 0 or not finite).
 */
export async function solveSymmetric(
  a: Float64Array,
  d: number,
  b: Float64Array,
  columns: number,
  breathe: () => Promise<void> = eventLoopYielder(),
): Promise<Float64Array> {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    await breathe();
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j]!;
      for (let k = 0; k < j; k++) s -= l[i * d + k]! * l[j * d + k]!;
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) {
          throw new FtlError(
            ErrorCode.InvalidConfig,
            `the pooled feature covariance is not positive definite (pivot ${i} is ${s}); the features at the cut do not vary, pick another featureLayer`,
          );
        }
        l[i * d + i] = Math.sqrt(s);
      } else {
        l[i * d + j] = s / l[j * d + j]!;
      }
    }
  }
  const x = new Float64Array(d * columns);
  const y = new Float64Array(d);
  for (let col = 0; col < columns; col++) {
    for (let i = 0; i < d; i++) {
      let s = b[i * columns + col]!;
      for (let k = 0; k < i; k++) s -= l[i * d + k]! * y[k]!;
      y[i] = s / l[i * d + i]!;
    }
    for (let i = d - 1; i >= 0; i--) {
      let s = y[i]!;
      for (let k = i + 1; k < d; k++) s -= l[k * d + i]! * x[k * columns + col]!;
      x[i * columns + col] = s / l[i * d + i]!;
    }
  }
  return x;
}

/**
 * A linear head's weights set to the shrinkage linear discriminant of pooled class statistics: with the
 * pooled within-class covariance C = S_w / (n − k) (k: classes present) shrunk to Σ = (1 − γ)C + γ·(tr C/d)·I,
 * output kernel column c = Σ⁻¹μ_c and bias c = −½·μ_cᵀΣ⁻¹μ_c + log(n_c / n). The logits are then the
 * log-posteriors of a Gaussian model with a shared covariance (up to a constant), so training can go on
 * from them with cross-entropy. A class with count 0 gets the present classes' mean column and mean bias
 * − 10: its logit is 10 below their mean logit at every input, so it is not predicted until training
 * teaches it. Every
 * other tensor in `weights` is kept; `weights` itself is not changed.
 *
 * @param means classes × d values, row-major. @param scatter d × d pooled within-class scatter (a sum, not divided).
 * @throws FtlError(INVALID_CONFIG) with hidden layers in the head or a covariance that is not positive
 * definite; FtlError(WEIGHTS_MISMATCH) when the sizes do not fit the head.
 */
export async function discriminantHead(
  weights: Weights,
  means: Float64Array,
  counts: readonly number[],
  scatter: Float64Array,
  shrinkage = DISCRIMINANT_SHRINKAGE,
): Promise<Weights> {
  const { kernel, bias, featureDim: d, classes } = linearOutputLayer(weights, 'a discriminant head');
  if (counts.length !== classes || means.length !== classes * d || scatter.length !== d * d) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `class statistics of ${counts.length} classes, ${means.length} mean values and ${scatter.length} scatter values do not fit a head of ${classes} classes on ${d} features`,
    );
  }
  if (!(shrinkage >= 0 && shrinkage <= 1)) throw new FtlError(ErrorCode.InvalidConfig, `shrinkage must be within [0, 1] (got ${shrinkage})`);
  const present = counts.flatMap((n, c) => (n > 0 ? [c] : []));
  const n = present.reduce((s, c) => s + counts[c]!, 0);
  const dof = Math.max(n - present.length, 1);
  let trace = 0;
  for (let j = 0; j < d; j++) trace += scatter[j * d + j]! / dof;
  // A feature vector that never varies (trace 0) still gives a usable (Euclidean) discriminant.
  const ridge = shrinkage * (trace > 0 ? trace / d : 1) + (trace > 0 ? 0 : 1);
  const cov = new Float64Array(d * d);
  for (let k = 0; k < d * d; k++) cov[k] = ((1 - shrinkage) * scatter[k]!) / dof;
  for (let j = 0; j < d; j++) cov[j * d + j]! += ridge;
  // Right-hand sides: one column per present class.
  const rhs = new Float64Array(d * present.length);
  present.forEach((c, col) => {
    for (let j = 0; j < d; j++) rhs[j * present.length + col] = means[c * d + j]!;
  });
  const solved = await solveSymmetric(cov, d, rhs, present.length);
  const values = weights.values.slice();
  // An absent class's logit is the present classes' mean logit − 10 at every input, so it never wins.
  const meanColumn = new Float64Array(d + 1);
  present.forEach((c, col) => {
    let quad = 0;
    for (let j = 0; j < d; j++) {
      const w = solved[j * present.length + col]!;
      values[kernel.offset + j * classes + c] = w;
      meanColumn[j]! += w / present.length;
      quad += w * means[c * d + j]!;
    }
    const b = -quad / 2 + Math.log(counts[c]! / n);
    values[bias.offset + c] = b;
    meanColumn[d]! += b / present.length;
  });
  for (let c = 0; c < classes; c++) {
    if (counts[c]! > 0) continue;
    for (let j = 0; j < d; j++) values[kernel.offset + j * classes + c] = meanColumn[j]!;
    values[bias.offset + c] = meanColumn[d]! - 10;
  }
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new FtlError(ErrorCode.InvalidConfig, `the discriminant head has a non-finite value at ${bad}; the pooled class statistics are degenerate`);
  return { specs: weights.specs, values };
}
