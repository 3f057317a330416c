import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { coordinateMedian, krumScores, krumSelect, mean, trimmedMean } from './robust.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';

const f32 = (min: number, max: number) => fc.float({ min: Math.fround(min), max: Math.fround(max), noNaN: true, noDefaultInfinity: true });
const vector = (d: number, min = -1e3, max = 1e3) =>
  fc.float32Array({ minLength: d, maxLength: d, min: Math.fround(min), max: Math.fround(max), noNaN: true, noDefaultInfinity: true });
/** Any finite float32, biased towards the huge ones an attacker would send. */
const outlierValue = fc.oneof(
  fc.float({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(Math.fround(1e30), -Math.fround(1e30), 3.4028234663852886e38, -3.4028234663852886e38),
);
const outlier = (d: number) => fc.array(outlierValue, { minLength: d, maxLength: d }).map((a) => Float32Array.from(a));
/** A permutation of 0..n-1. */
const permutation = (n: number) => fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n });
const betaArb = fc.double({ min: 0, max: 0.5, maxExcluded: true, noNaN: true });

/** Element-wise equality up to `rel` relative error (0: exact, treating 0 and -0 as equal). */
function expectSame(actual: ArrayLike<number>, expected: ArrayLike<number>, rel = 0): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= rel * Math.max(1, Math.abs(e)))) expect(`[${i}] ${a}`).toBe(`[${i}] ${e}`);
  }
}

/** Asserts every output coordinate lies within [min, max] of the honest vectors at that coordinate. */
function expectWithinHonestRange(out: Float32Array, honest: readonly Float32Array[]): void {
  out.forEach((x, j) => {
    const column = honest.map((h) => h[j]!);
    const lo = Math.min(...column);
    const hi = Math.max(...column);
    if (!(x >= lo && x <= hi)) expect(`coordinate ${j}: ${x}`).toBe(`coordinate ${j}: within [${lo}, ${hi}]`);
  });
}

/** Honest and outlier vectors mixed in a random order; `honest` is the set of the honest indices. */
const mixed = (
  h: number,
  f: number,
  d: number,
  honestArb: fc.Arbitrary<Float32Array> = vector(d),
  outliersArb: fc.Arbitrary<Float32Array[]> = fc.array(outlier(d), { minLength: f, maxLength: f }),
) =>
  fc
    .record({
      honest: fc.array(honestArb, { minLength: h, maxLength: h }),
      outliers: outliersArb,
      order: permutation(h + f),
    })
    .map(({ honest, outliers, order }) => {
      const all = [...honest, ...outliers];
      return { honestVectors: honest, vectors: order.map((i) => all[i]!), honest: new Set(order.flatMap((src, at) => (src < h ? [at] : []))) };
    });

const v = (...xs: number[]) => Float32Array.from(xs);

describe('order invariance', () => {
  const caseArb = fc
    .record({ d: fc.integer({ min: 1, max: 6 }), n: fc.integer({ min: 1, max: 9 }) })
    .chain(({ d, n }) => fc.record({ vectors: fc.array(vector(d), { minLength: n, maxLength: n }), order: permutation(n), beta: betaArb }));

  test('coordinateMedian, trimmedMean and mean do not depend on the order of the updates', () => {
    fc.assert(
      fc.property(caseArb, ({ vectors, order, beta }) => {
        const shuffled = order.map((i) => vectors[i]!);
        expectSame(coordinateMedian(shuffled), coordinateMedian(vectors));
        expectSame(trimmedMean(shuffled, beta), trimmedMean(vectors, beta));
        expectSame(mean(shuffled), mean(vectors), 1e-6);
      }),
    );
  });

  test('Krum scores follow their vector and the selection picks equally good updates', () => {
    const krumArb = fc
      .record({ d: fc.integer({ min: 1, max: 6 }), f: fc.integer({ min: 0, max: 3 }), extra: fc.integer({ min: 0, max: 6 }) })
      .chain(({ d, f, extra }) => {
        const n = f + 3 + extra;
        return fc.record({
          f: fc.constant(f),
          vectors: fc.array(vector(d), { minLength: n, maxLength: n }),
          order: permutation(n),
          m: fc.integer({ min: 1, max: n }),
        });
      });
    fc.assert(
      fc.property(krumArb, ({ f, vectors, order, m }) => {
        const shuffled = order.map((i) => vectors[i]!);
        const scores = krumScores(vectors, f);
        const shuffledScores = krumScores(shuffled, f);
        expectSame(
          shuffledScores,
          order.map((i) => scores[i]!),
        );
        const picked = krumSelect(vectors, f, m);
        const shuffledPicked = krumSelect(shuffled, f, m);
        expectSame(
          shuffledPicked.map((i) => shuffledScores[i]!),
          picked.map((i) => scores[i]!),
        );
        // Without a tie for the best score, Krum picks the very same update.
        if (scores.filter((s) => s === scores[picked[0]!]).length === 1) expect(order[shuffledPicked[0]!]).toBe(picked[0]);
      }),
    );
  });
});

describe('robustness to outliers', () => {
  test('coordinateMedian stays within the honest range with f < h arbitrary outliers', () => {
    const arb = fc
      .record({ d: fc.integer({ min: 1, max: 5 }), h: fc.integer({ min: 1, max: 8 }) })
      .chain(({ d, h }) => fc.integer({ min: 0, max: h - 1 }).chain((f) => mixed(h, f, d)));
    fc.assert(
      fc.property(arb, ({ honestVectors, vectors }) => {
        expectWithinHonestRange(coordinateMedian(vectors), honestVectors);
      }),
    );
  });

  test('trimmedMean stays within the honest range with f <= floor(beta·n) arbitrary outliers', () => {
    const arb = fc.record({ d: fc.integer({ min: 1, max: 5 }), h: fc.integer({ min: 1, max: 8 }) }).chain(({ d, h }) =>
      fc.integer({ min: 0, max: h - 1 }).chain((f) => {
        // Any beta whose k = floor(beta·n) is between f and the largest k that leaves a value.
        const n = h + f;
        const beta = fc
          .record({ k: fc.integer({ min: f, max: Math.floor((n - 1) / 2) }), u: fc.double({ min: 0, max: 0.99, noNaN: true }) })
          .map(({ k, u }) => (k + u * Math.min(1, n / 2 - k)) / n);
        return fc.record({ mix: mixed(h, f, d), f: fc.constant(f), beta });
      }),
    );
    fc.assert(
      fc.property(arb, ({ mix, f, beta }) => {
        fc.pre(f <= Math.floor(beta * mix.vectors.length));
        expectWithinHonestRange(trimmedMean(mix.vectors, beta), mix.honestVectors);
      }),
    );
  });

  test('Krum selects an honest update when f < (n − 2)/2', () => {
    const arb = fc.record({ d: fc.integer({ min: 1, max: 6 }), n: fc.integer({ min: 3, max: 15 }) }).chain(({ d, n }) =>
      fc
        .record({
          f: fc.integer({ min: 0, max: Math.floor((n - 3) / 2) }),
          center: vector(d, -100, 100),
          collude: fc.boolean(),
        })
        .chain(({ f, center, collude }) => {
          const honest = fc.array(f32(-1, 1), { minLength: d, maxLength: d }).map((noise) => center.map((c, j) => c + noise[j]!));
          const far = fc
            .array(fc.record({ sign: fc.constantFrom(-1, 1), r: f32(0, 1e4) }), { minLength: d, maxLength: d })
            .map((offs) => center.map((c, j) => c + offs[j]!.sign * (100 + offs[j]!.r)));
          // Colluding attackers all send the same vector, which makes them each other's nearest neighbours.
          const byzantine = collude ? far.map((x) => Array<Float32Array>(f).fill(x)) : fc.array(far, { minLength: f, maxLength: f });
          return mixed(n - f, f, d, honest, byzantine).map((mix) => ({ ...mix, f }));
        }),
    );
    fc.assert(
      fc.property(arb, ({ vectors, honest, f }) => {
        expect(honest.has(krumSelect(vectors, f)[0]!)).toBe(true);
        // Here honest updates are so much closer together that Multi-Krum with m = h keeps exactly them.
        expect(new Set(krumSelect(vectors, f, honest.size))).toEqual(honest);
      }),
    );
  });
});

describe('agreement', () => {
  const equalArb = fc
    .record({ d: fc.integer({ min: 1, max: 8 }), n: fc.integer({ min: 1, max: 9 }) })
    .chain(({ d, n }) => fc.record({ x: vector(d), n: fc.constant(n), beta: betaArb }));

  test('every rule returns the vector itself when all updates are equal', () => {
    fc.assert(
      fc.property(equalArb, ({ x, n, beta }) => {
        const vectors = Array<Float32Array>(n).fill(x);
        expectSame(mean(vectors), x);
        expectSame(coordinateMedian(vectors), x);
        expectSame(trimmedMean(vectors, beta), x);
        if (n >= 3) expectSame(vectors[krumSelect(vectors, 0)[0]!]!, x);
      }),
    );
  });

  test('trimmedMean with beta = 0 is the mean', () => {
    const arb = fc.integer({ min: 1, max: 8 }).chain((d) => fc.array(vector(d), { minLength: 1, maxLength: 9 }));
    fc.assert(
      fc.property(arb, (vectors) => {
        expectSame(trimmedMean(vectors, 0), mean(vectors), 1e-6);
      }),
    );
  });
});

describe('worked examples', () => {
  test.each([
    ['odd n: the middle value', [v(1, 9), v(2, 8), v(1e9, -1e9)], [2, 8]],
    ['even n: the mean of the two middle values', [v(1), v(2), v(4), v(100)], [3]],
    ['a single update', [v(5, -5)], [5, -5]],
  ])('coordinateMedian, %s', (_, vectors, expected) => {
    expectSame(coordinateMedian(vectors), expected);
  });

  test.each([
    ['beta 0.2 of 5 drops one each end', [v(1), v(2), v(3), v(4), v(1000)], 0.2, [3]],
    ['beta 0.25 of 4 drops one each end', [v(-50), v(2), v(4), v(50)], 0.25, [3]],
    ['beta 0.19 of 5 drops nothing', [v(1), v(2), v(3), v(4), v(10)], 0.19, [4]],
    ['beta 0.49 of 3 keeps the median', [v(1, 0), v(2, 0), v(30, 3)], 0.49, [2, 0]],
  ])('trimmedMean, %s', (_, vectors, beta, expected) => {
    expectSame(trimmedMean(vectors, beta), expected);
  });

  // Points 0, 1, 3, 10 on a line; squared distances 0–1: 1, 0–3: 9, 0–10: 100, 1–3: 4, 1–10: 81, 3–10: 49.
  const line = [v(0), v(1), v(3), v(10)];
  test.each([
    ['f = 0 sums the 2 nearest', 0, [1 + 9, 1 + 4, 4 + 9, 49 + 81]],
    ['f = 1 keeps the nearest only', 1, [1, 1, 4, 49]],
  ])('krumScores, %s', (_, f, expected) => {
    expect(krumScores(line, f)).toEqual(expected);
  });

  test.each([
    ['Krum picks the most central', 0, 1, [1]],
    ['Multi-Krum orders by score', 0, 3, [1, 0, 2]],
    ['a tie goes to the lower index', 1, 2, [0, 1]],
    ['m = n returns everyone', 1, 4, [0, 1, 2, 3]],
  ])('krumSelect, %s', (_, f, m, expected) => {
    expect(krumSelect(line, f, m)).toEqual(expected);
  });

  test('mean is unweighted', () => {
    expectSame(mean([v(1, 2), v(3, 4)]), [2, 3]);
  });

  test('a median of 100,000 coordinates over 10 updates stays fast', () => {
    const vectors = Array.from({ length: 10 }, (_, i) => new Float32Array(100_000).map((_, j) => Math.sin(i * 7 + j)));
    const start = performance.now();
    coordinateMedian(vectors);
    trimmedMean(vectors, 0.2);
    expect(performance.now() - start).toBeLessThan(2000);
  });
});

describe('errors', () => {
  const three = [v(0), v(1), v(2)];
  test.each([
    ['coordinateMedian of nothing', () => coordinateMedian([]), ErrorCode.Quorum, /coordinate median needs at least one update \(got 0\)/],
    [
      'coordinateMedian of unequal lengths',
      () => coordinateMedian([v(1, 2), v(1, 2, 3)]),
      ErrorCode.WeightsMismatch,
      /update 1 has 3 values but update 0 has 2/,
    ],
    ['trimmedMean with beta 0.5', () => trimmedMean(three, 0.5), ErrorCode.InvalidConfig, /^beta must be in \[0, 0\.5\) \(got 0\.5\)$/],
    ['trimmedMean with a negative beta', () => trimmedMean(three, -0.1), ErrorCode.InvalidConfig, /beta must be in \[0, 0\.5\) \(got -0\.1\)/],
    ['trimmedMean with a NaN beta', () => trimmedMean(three, NaN), ErrorCode.InvalidConfig, /beta must be in \[0, 0\.5\) \(got NaN\)/],
    ['trimmedMean of nothing', () => trimmedMean([], 0.2), ErrorCode.Quorum, /n=0 .*k=0/],
    ['trimmedMean of unequal lengths', () => trimmedMean([v(1), v(1, 2)], 0), ErrorCode.WeightsMismatch, /update 1 has 2 values but update 0 has 1/],
    ['krumScores with n = f + 2', () => krumScores(three, 1), ErrorCode.Quorum, /n=3, f=1/],
    ['krumScores of nothing', () => krumScores([], 0), ErrorCode.Quorum, /n=0, f=0/],
    ['krumScores with a negative f', () => krumScores(three, -1), ErrorCode.Quorum, /integer f >= 0 .*f=-1/],
    ['krumScores with a fractional f', () => krumScores([...three, v(3)], 0.5), ErrorCode.Quorum, /integer f >= 0 .*f=0\.5/],
    [
      'krumScores of unequal lengths',
      () => krumScores([v(0), v(1), v(2, 3)], 0),
      ErrorCode.WeightsMismatch,
      /update 2 has 2 values but update 0 has 1/,
    ],
    ['krumSelect with m = 0', () => krumSelect(three, 0, 0), ErrorCode.InvalidConfig, /m must be an integer in \[1, 3\].*\(got 0\)/],
    ['krumSelect with m > n', () => krumSelect(three, 0, 4), ErrorCode.InvalidConfig, /m must be an integer in \[1, 3\].*\(got 4\)/],
    ['krumSelect with a fractional m', () => krumSelect(three, 0, 1.5), ErrorCode.InvalidConfig, /\(got 1\.5\)/],
    ['mean of nothing', () => mean([]), ErrorCode.Quorum, /mean needs at least one update/],
    ['mean of unequal lengths', () => mean([v(1), v(1, 2)]), ErrorCode.WeightsMismatch, /update 1 has 2 values but update 0 has 1/],
  ])('refuses %s', (_, fn, code, message) => {
    expectFtlError(fn, code, message);
  });
});

describe('Krum ties', () => {
  test('tied scores pick the same update whatever the arrival order (fast-check found this)', () => {
    // -1 and 1 are equally central among {-2, -1, 1, 2}; the choice must not follow their positions.
    const points = [-2, -1, 1, 2].map((x) => Float32Array.of(x));
    const reversed = [...points].reverse();
    expect(points[krumSelect(points, 0, 1)[0]!]![0]).toBe(-1);
    expect(reversed[krumSelect(reversed, 0, 1)[0]!]![0]).toBe(-1);
  });
});
