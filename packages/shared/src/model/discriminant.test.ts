import { beforeAll, describe, expect, test } from 'vitest';
import { createRng } from '../random.js';
import { ErrorCode } from '../errors.js';
import type { Weights } from '../codec/weights.js';
import { discriminantHead, solveSymmetric, withinClassScatter } from './discriminant.js';

/** A linear head of `classes` outputs on `d` features, every value `fill`. */
function linearHead(d: number, classes: number, fill = 0.5): Weights {
  return {
    specs: [
      { name: 'head_output/kernel', shape: [d, classes], dtype: 'float32' },
      { name: 'head_output/bias', shape: [classes], dtype: 'float32' },
    ],
    values: new Float32Array(d * classes + classes).fill(fill),
  };
}

/**
 * Three classes in 4 dimensions with a shared, strongly correlated covariance (x = μ_c + A·z): a case where
 * the nearest class mean in Euclidean distance is wrong often and the discriminant is not.
 */
function correlatedClasses(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = createRng(seed);
  const mu = [
    [0, 0, 0, 0],
    [1, -1, 0, 0],
    [0, 1, 1, 0],
  ];
  const a = [
    [3, 2.9, 0, 0],
    [0, 0.3, 0, 0],
    [0, 0, 3, 2.9],
    [0, 0, 0, 0.3],
  ];
  const x = new Float32Array(n * 4);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = c;
    const z = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    for (let j = 0; j < 4; j++) x[i * 4 + j] = mu[c]![j]! + a[j]!.reduce((s, v, k) => s + v * z[k]!, 0);
  }
  return { x, y };
}

function classMeans(x: Float32Array, y: Int32Array, d: number, classes: number): { means: Float64Array; counts: number[] } {
  const means = new Float64Array(classes * d);
  const counts = new Array<number>(classes).fill(0);
  y.forEach((c, i) => {
    counts[c]!++;
    for (let j = 0; j < d; j++) means[c * d + j]! += x[i * d + j]!;
  });
  counts.forEach((n, c) => {
    for (let j = 0; j < d; j++) means[c * d + j]! /= Math.max(n, 1);
  });
  return { means, counts };
}

/** Accuracy of a linear head (kernel d × classes, then bias) on labelled vectors. */
function accuracy(w: Weights, x: Float32Array, y: Int32Array, d: number, classes: number): number {
  let hits = 0;
  y.forEach((label, i) => {
    let best = -Infinity;
    let arg = -1;
    for (let c = 0; c < classes; c++) {
      let s = w.values[d * classes + c]!;
      for (let j = 0; j < d; j++) s += x[i * d + j]! * w.values[j * classes + c]!;
      if (s > best) [best, arg] = [s, c];
    }
    if (arg === label) hits++;
  });
  return hits / y.length;
}

describe('solveSymmetric', () => {
  test('solves a positive definite system for several right-hand sides', async () => {
    const a = Float64Array.from([4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2]);
    const b = Float64Array.from([1, 0, 2, 1, 3, -1]); // 3 × 2
    const x = await solveSymmetric(a, 3, b, 2);
    for (let col = 0; col < 2; col++) {
      for (let i = 0; i < 3; i++) {
        const row = [0, 1, 2].reduce((s, k) => s + a[i * 3 + k]! * x[k * 2 + col]!, 0);
        expect(row).toBeCloseTo(b[i * 2 + col]!, 12);
      }
    }
  });

  test('refuses a matrix that is not positive definite', async () => {
    await expect(solveSymmetric(Float64Array.from([1, 2, 2, 1]), 2, Float64Array.from([1, 1]), 1)).rejects.toMatchObject({
      code: ErrorCode.InvalidConfig,
      message: expect.stringMatching(/not positive definite \(pivot 1/),
    });
  });

  test('offers the event loop a turn before every row, so a large solve never blocks a server', async () => {
    const d = 50;
    const a = new Float64Array(d * d);
    for (let i = 0; i < d; i++) a[i * d + i] = 2;
    let offered = 0;
    const x = await solveSymmetric(a, d, new Float64Array(d).fill(1), 1, async () => {
      offered++;
    });
    expect(x[d - 1]).toBeCloseTo(0.5, 12);
    expect(offered).toBe(d);
  });
});

describe('withinClassScatter', () => {
  test('is the sum of outer products of the vectors about their class means', async () => {
    const x = Float32Array.from([1, 2, 3, 5, 10, 0, 12, 4]);
    const y = Int32Array.from([0, 0, 1, 1]);
    const { means } = classMeans(x, y, 2, 2);
    // Class 0: deviations (−1, −1.5), (1, 1.5); class 1: (−1, −2), (1, 2).
    expect(Array.from(await withinClassScatter(x, y, means, 2))).toEqual([4, 7, 7, 12.5]);
  });
});

describe('discriminantHead', () => {
  const train = correlatedClasses(600, 1);
  const test_ = correlatedClasses(3000, 2);
  const { means, counts } = classMeans(train.x, train.y, 4, 3);
  let scatter: Float64Array;
  beforeAll(async () => {
    scatter = await withinClassScatter(train.x, train.y, means, 4);
  });

  test('beats the nearest class mean where the features are correlated, and matches the Gaussian posterior', async () => {
    const head = await discriminantHead(linearHead(4, 3), means, counts, scatter, 0);
    expect(accuracy(head, test_.x, test_.y, 4, 3)).toBeGreaterThan(0.9);
    // Nearest class mean (Euclidean): kernel μ_c, bias −½‖μ_c‖².
    const ncm = linearHead(4, 3);
    for (let c = 0; c < 3; c++) {
      let norm = 0;
      for (let j = 0; j < 4; j++) {
        ncm.values[j * 3 + c] = means[c * 4 + j]!;
        norm += means[c * 4 + j]! ** 2;
      }
      ncm.values[12 + c] = -norm / 2;
    }
    expect(accuracy(ncm, test_.x, test_.y, 4, 3)).toBeLessThan(0.75);
    // With equal counts the logit differences are the log-likelihood ratios: at μ_0 class 0 beats class 1
    // by ½·(μ_0 − μ_1)ᵀΣ⁻¹(μ_0 − μ_1) > 0.
    const logit = (c: number, x: number[]) => head.values[12 + c]! + x.reduce((s, v, j) => s + v * head.values[j * 3 + c]!, 0);
    const at0 = Array.from(means.subarray(0, 4));
    expect(logit(0, at0)).toBeGreaterThan(logit(1, at0));
  });

  test('shrinkage moves it towards the nearest class mean, and 1 is exactly that classifier up to scale', async () => {
    const full = await discriminantHead(linearHead(4, 3), means, counts, scatter, 1);
    // Σ = (tr C / d)·I: kernel columns are μ_c / s, so their ratios are those of the means.
    const s = means[4]! / full.values[1]!;
    for (let c = 0; c < 3; c++) for (let j = 0; j < 4; j++) expect(full.values[j * 3 + c]! * s).toBeCloseTo(means[c * 4 + j]!, 4);
  });

  test('a class no site holds is never predicted, and the others predict as they would without it', async () => {
    const three = await discriminantHead(linearHead(4, 3), means, counts, scatter);
    const four = await discriminantHead(linearHead(4, 4), Float64Array.from([...means, 0, 0, 0, 0]), [...counts, 0], scatter);
    const far = Float32Array.from(Array.from(test_.x, (v) => v * 50));
    for (const x of [test_.x, far]) {
      for (let i = 0; i < test_.y.length; i++) {
        const logits = [0, 1, 2, 3].map((c) => four.values[16 + c]! + [0, 1, 2, 3].reduce((s, j) => s + x[i * 4 + j]! * four.values[j * 4 + c]!, 0));
        expect(Math.max(...logits.slice(0, 3))).toBeGreaterThan(logits[3]!);
      }
    }
    expect(accuracy(four, test_.x, test_.y, 4, 4)).toBeCloseTo(accuracy(three, test_.x, test_.y, 4, 3), 10);
  });

  test('leaves every other tensor as it was and does not change its input', async () => {
    const w: Weights = {
      specs: [{ name: 'conv2/kernel', shape: [2], dtype: 'float32' }, ...linearHead(4, 3).specs],
      values: Float32Array.from([7, 8, ...new Array(15).fill(0.5)]),
    };
    const before = w.values.slice();
    const head = await discriminantHead(w, means, counts, scatter);
    expect(Array.from(head.values.subarray(0, 2))).toEqual([7, 8]);
    expect(w.values).toEqual(before);
  });

  test('refuses a head with hidden layers and statistics that do not fit', async () => {
    const hidden: Weights = {
      specs: [{ name: 'head_hidden_0/kernel', shape: [4, 2], dtype: 'float32' }, ...linearHead(2, 3).specs],
      values: new Float32Array(17),
    };
    await expect(discriminantHead(hidden, means, counts, scatter)).rejects.toMatchObject({
      code: ErrorCode.InvalidConfig,
      message: expect.stringMatching(/needs a linear head/),
    });
    await expect(discriminantHead(linearHead(4, 3), means, counts, scatter.subarray(0, 9))).rejects.toMatchObject({
      code: ErrorCode.WeightsMismatch,
      message: expect.stringMatching(/do not fit a head of 3 classes on 4 features/),
    });
  });
});
