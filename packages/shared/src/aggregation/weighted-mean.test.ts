import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { fedAvg, WeightedMean } from './weighted-mean.js';

const vectors = (len: number, min = 1, max = 6) =>
  fc.array(fc.float32Array({ minLength: len, maxLength: len, noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 }), { minLength: min, maxLength: max });

describe('FedAvg', () => {
  test('with equal sample counts it is the plain mean', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }).chain((len) => vectors(len)), (vs) => {
        const avg = fedAvg(vs.map((values) => ({ values, numExamples: 7 })));
        avg.forEach((v, i) => {
          const mean = vs.reduce((s, x) => s + x[i]!, 0) / vs.length;
          expect(v).toBeCloseTo(mean, 2);
        });
      }),
    );
  });

  test('weights by sample count: 100 samples at 1 and 300 at 5 average to 4', () => {
    expect(Array.from(fedAvg([{ values: Float32Array.of(1, 0), numExamples: 100 }, { values: Float32Array.of(5, 8), numExamples: 300 }]))).toEqual([4, 6]);
  });

  test('does not depend on the order of the clients', () => {
    fc.assert(
      fc.property(vectors(5, 2, 6), fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 6, maxLength: 6 }), (vs, ns) => {
        const updates = vs.map((values, i) => ({ values, numExamples: ns[i]! }));
        const a = fedAvg(updates);
        const b = fedAvg([...updates].reverse());
        a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 3));
      }),
    );
  });

  test('streaming accumulation equals the one-shot result', () => {
    const acc = new WeightedMean(2);
    acc.add(Float32Array.of(2, 4), 1);
    acc.add(Float32Array.of(4, 8), 3);
    expect(acc.size).toBe(2);
    expect(Array.from(acc.result())).toEqual(Array.from(fedAvg([{ values: Float32Array.of(2, 4), numExamples: 1 }, { values: Float32Array.of(4, 8), numExamples: 3 }])));
  });

  test.each([
    ['no updates', () => fedAvg([]), /at least one update/],
    ['a zero weight', () => new WeightedMean(1).add(Float32Array.of(1), 0), /positive finite number \(got 0\)/],
    ['a NaN weight', () => new WeightedMean(1).add(Float32Array.of(1), NaN), /positive finite number \(got NaN\)/],
    ['a vector of another length', () => new WeightedMean(2).add(Float32Array.of(1), 1), /has 1 values, expected 2/],
  ])('refuses %s', (_, fn, message) => {
    expect(fn).toThrow(message);
  });
});
