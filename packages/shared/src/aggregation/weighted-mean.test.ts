import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { WeightedMean } from './weighted-mean.js';

const vectors = (len: number, min = 1, max = 6) =>
  fc.array(fc.float32Array({ minLength: len, maxLength: len, noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 }), {
    minLength: min,
    maxLength: max,
  });

/** The sample-weighted mean of the updates (FedAvg's rule), folded in one by one. */
function weightedMean(updates: ReadonlyArray<{ values: Float32Array; numExamples: number }>): Float32Array {
  const acc = new WeightedMean(updates[0]?.values.length ?? 0);
  for (const u of updates) acc.add(u.values, u.numExamples);
  return acc.result();
}

describe('the weighted mean of updates', () => {
  test('with equal sample counts it is the plain mean', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }).chain((len) => vectors(len)),
        (vs) => {
          const avg = weightedMean(vs.map((values) => ({ values, numExamples: 7 })));
          avg.forEach((v, i) => {
            const mean = vs.reduce((s, x) => s + x[i]!, 0) / vs.length;
            expect(v).toBeCloseTo(mean, 2);
          });
        },
      ),
    );
  });

  test('weights by sample count: 100 samples at 1 and 300 at 5 average to 4', () => {
    expect(
      Array.from(
        weightedMean([
          { values: Float32Array.of(1, 0), numExamples: 100 },
          { values: Float32Array.of(5, 8), numExamples: 300 },
        ]),
      ),
    ).toEqual([4, 6]);
  });

  test('does not depend on the order of the clients', () => {
    fc.assert(
      fc.property(vectors(5, 2, 6), fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 6, maxLength: 6 }), (vs, ns) => {
        const updates = vs.map((values, i) => ({ values, numExamples: ns[i]! }));
        const a = weightedMean(updates);
        const b = weightedMean([...updates].reverse());
        a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 3));
      }),
    );
  });

  test('counts what it folded in, and its result is Σ nᵢ·wᵢ / Σ nᵢ', () => {
    const acc = new WeightedMean(2);
    acc.add(Float32Array.of(2, 4), 1);
    acc.add(Float32Array.of(4, 8), 3);
    expect(acc.size).toBe(2);
    expect(Array.from(acc.result())).toEqual([3.5, 7]);
  });

  test.each([
    ['no updates', () => new WeightedMean(2).result(), /weighted mean of zero vectors/],
    ['a zero weight', () => new WeightedMean(1).add(Float32Array.of(1), 0), /positive finite number \(got 0\)/],
    ['a NaN weight', () => new WeightedMean(1).add(Float32Array.of(1), NaN), /positive finite number \(got NaN\)/],
    ['a vector of another length', () => new WeightedMean(2).add(Float32Array.of(1), 1), /has 1 values, expected 2/],
  ])('refuses %s', (_, fn, message) => {
    expect(fn).toThrow(message);
  });
});
