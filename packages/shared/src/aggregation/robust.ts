import { ErrorCode, FtlError } from '../errors.js';
import { WeightedMean } from './weighted-mean.js';

// Byzantine-robust aggregation rules over flat weight vectors. The caller keeps the n updates of a round
// in memory anyway, so these work on them in place: the coordinate-wise rules walk the model one
// coordinate at a time with an n-long scratch buffer instead of copying the n·d values. Inputs are
// expected to be finite (reject non-finite updates first); NaN gives an unspecified result.

/** Checks there is at least one vector and all have the same length; returns that length. */
function checkVectors(vectors: readonly Float32Array[], rule: string): number {
  const first = vectors[0];
  if (first === undefined) throw new FtlError(ErrorCode.Quorum, `${rule} needs at least one update (got 0)`);
  const d = first.length;
  vectors.forEach((v, i) => {
    if (v.length !== d) {
      throw new FtlError(
        ErrorCode.WeightsMismatch,
        `${rule}: update ${i} has ${v.length} values but update 0 has ${d}; all updates must be of the same model`,
      );
    }
  });
  return d;
}

/** Copies coordinate `j` of every vector into `scratch` and sorts it ascending. */
function sortedColumn(vectors: readonly Float32Array[], j: number, scratch: Float64Array): void {
  const n = scratch.length;
  for (let i = 0; i < n; i++) scratch[i] = vectors[i]![j]!;
  // Insertion sort: n is a handful of clients, where it beats the call overhead of TypedArray#sort.
  if (n > 32) {
    scratch.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const x = scratch[i]!;
    let k = i - 1;
    while (k >= 0 && scratch[k]! > x) {
      scratch[k + 1] = scratch[k]!;
      k--;
    }
    scratch[k + 1] = x;
  }
}

/**
 * Coordinate-wise median (Yin et al. 2018): each coordinate is decided by the middle client, so fewer
 * than half of the updates being arbitrary cannot drag it outside the range of the honest ones. For an
 * even count it is the mean of the two middle values.
 *
 * @example
 * coordinateMedian([Float32Array.of(1, 9), Float32Array.of(2, 8), Float32Array.of(1e9, -1e9)]); // [2, 8]
 */
export function coordinateMedian(vectors: readonly Float32Array[]): Float32Array {
  const d = checkVectors(vectors, 'coordinate median');
  const n = vectors.length;
  const scratch = new Float64Array(n);
  const out = new Float32Array(d);
  const lo = (n - 1) >> 1;
  const hi = n >> 1;
  for (let j = 0; j < d; j++) {
    sortedColumn(vectors, j, scratch);
    out[j] = (scratch[lo]! + scratch[hi]!) / 2;
  }
  return out;
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate drop the k = ⌊β·n⌋ smallest and k
 * largest values and average the rest, so up to k arbitrary updates are cut off while the honest
 * values still get averaged (less noisy than the median). β = 0 is the plain mean.
 *
 * @example
 * trimmedMean([a, b, c, d, e], 0.2); // drops the lowest and the highest value of every coordinate
 */
export function trimmedMean(vectors: readonly Float32Array[], beta: number): Float32Array {
  if (!(beta >= 0 && beta < 0.5)) throw new FtlError(ErrorCode.InvalidConfig, `beta must be in [0, 0.5) (got ${beta})`);
  const n = vectors.length;
  const k = Math.floor(beta * n);
  if (n - 2 * k < 1) {
    throw new FtlError(
      ErrorCode.Quorum,
      `trimmed mean of n=${n} updates drops k=${k} from each end and keeps none; wait for more updates or lower beta`,
    );
  }
  const d = checkVectors(vectors, 'trimmed mean');
  const scratch = new Float64Array(n);
  const out = new Float32Array(d);
  const kept = n - 2 * k;
  for (let j = 0; j < d; j++) {
    sortedColumn(vectors, j, scratch);
    let sum = 0;
    for (let i = k; i < n - k; i++) sum += scratch[i]!;
    out[j] = sum / kept;
  }
  return out;
}

/**
 * Krum scores (Blanchard et al. 2017): an update's score is the sum of squared distances to its
 * n − f − 2 nearest other updates, so an update that sits among the honest cluster scores low while an
 * attacker far away has to pay for the distance to at least two honest ones. Needs n > f + 2. A NaN
 * distance counts as infinitely far, so a NaN update ranks last instead of poisoning everyone's score.
 *
 * @example
 * krumScores(vectors, 1); // one score per vector, lower is more central
 */
export function krumScores(vectors: readonly Float32Array[], f: number): number[] {
  const n = vectors.length;
  if (!(Number.isInteger(f) && f >= 0) || n - f - 2 < 1) {
    throw new FtlError(
      ErrorCode.Quorum,
      `Krum needs an integer f >= 0 and more than f + 2 updates (got n=${n}, f=${f}); wait for more updates or lower f`,
    );
  }
  const d = checkVectors(vectors, 'Krum');
  const dist = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    const va = vectors[a]!;
    for (let b = a + 1; b < n; b++) {
      const vb = vectors[b]!;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const diff = va[j]! - vb[j]!;
        s += diff * diff;
      }
      if (Number.isNaN(s)) s = Infinity;
      dist[a * n + b] = s;
      dist[b * n + a] = s;
    }
  }
  const neighbours = n - f - 2;
  const others = new Float64Array(n - 1);
  const scores: number[] = [];
  for (let a = 0; a < n; a++) {
    let o = 0;
    for (let b = 0; b < n; b++) if (b !== a) others[o++] = dist[a * n + b]!;
    others.sort();
    let score = 0;
    for (let i = 0; i < neighbours; i++) score += others[i]!;
    scores.push(score);
  }
  return scores;
}

/**
 * Krum / Multi-Krum selection (Blanchard et al. 2017): the indices of the m most central updates by
 * {@link krumScores}, best first; ties go to the lexicographically smaller update (then the lower index),
 * so the choice is deterministic and independent of arrival order. m = 1 is Krum;
 * averaging the m picks (Multi-Krum) keeps Krum's robustness with less variance.
 *
 * @example
 * const picked = krumSelect(vectors, 1, 3); mean(picked.map((i) => vectors[i]!));
 */
export function krumSelect(vectors: readonly Float32Array[], f: number, m = 1): number[] {
  const scores = krumScores(vectors, f);
  const n = vectors.length;
  if (!(Number.isInteger(m) && m >= 1 && m <= n)) {
    throw new FtlError(ErrorCode.InvalidConfig, `Krum m must be an integer in [1, ${n}] (the number of updates) (got ${m})`);
  }
  const order = scores.map((_, i) => i);
  // Ties go by the updates' values, not their positions, so the choice does not depend on arrival order.
  order.sort((a, b) => scores[a]! - scores[b]! || compareValues(vectors[a]!, vectors[b]!) || a - b);
  return order.slice(0, m);
}

/** Lexicographic order of two vectors of the same length. */
function compareValues(a: Float32Array, b: Float32Array): number {
  for (let j = 0; j < a.length; j++) if (a[j] !== b[j]) return a[j]! < b[j]! ? -1 : 1;
  return 0;
}

/**
 * Unweighted mean of the updates: what Multi-Krum averages, and the β = 0 trimmed mean. Sample counts
 * are deliberately ignored, since robust rules must not let a client buy influence by claiming more data.
 *
 * @example
 * mean([Float32Array.of(1, 2), Float32Array.of(3, 4)]); // [2, 3]
 */
export function mean(vectors: readonly Float32Array[]): Float32Array {
  const d = checkVectors(vectors, 'mean');
  const acc = new WeightedMean(d);
  for (const v of vectors) acc.add(v, 1);
  return acc.result();
}
