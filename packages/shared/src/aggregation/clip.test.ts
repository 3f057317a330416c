import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { clipUpdate } from './clip.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';

const vector = (d: number, min: number, max: number) =>
  fc.float32Array({ minLength: d, maxLength: d, min: Math.fround(min), max: Math.fround(max), noNaN: true, noDefaultInfinity: true });

/** update − global in float64, from the float32 values actually returned. */
const deltaOf = (update: Float32Array, global: Float32Array) => Array.from(update, (u, i) => u - global[i]!);
const norm = (xs: readonly number[]) => Math.sqrt(xs.reduce((s, x) => s + x * x, 0));

describe('clipUpdate', () => {
  const arb = fc
    .integer({ min: 1, max: 20 })
    .chain((d) => fc.record({ update: vector(d, -100, 100), global: vector(d, -1, 1), maxNorm: fc.double({ min: 0.1, max: 100, noNaN: true }) }));

  test('the clipped change is at most maxNorm, and exactly maxNorm when clipping happened', () => {
    fc.assert(
      fc.property(arb, ({ update, global, maxNorm }) => {
        const before = norm(deltaOf(update, global));
        const after = norm(deltaOf(clipUpdate(update, global, maxNorm), global));
        expect(after).toBeLessThanOrEqual(maxNorm * (1 + 1e-4));
        if (before > maxNorm) expect(Math.abs(after - maxNorm)).toBeLessThanOrEqual(maxNorm * 1e-4);
      }),
    );
  });

  test('an update already within the bound comes back unchanged, as a copy', () => {
    fc.assert(
      fc.property(arb, ({ update, global }) => {
        const out = clipUpdate(update, global, norm(deltaOf(update, global)) + 1e-3);
        expect(out).not.toBe(update);
        expect(Array.from(out)).toEqual(Array.from(update));
      }),
    );
  });

  test('keeps the direction of the change', () => {
    fc.assert(
      fc.property(arb, ({ update, global, maxNorm }) => {
        const before = deltaOf(update, global);
        fc.pre(norm(before) > 0);
        const after = deltaOf(clipUpdate(update, global, maxNorm), global);
        const cosine = before.reduce((s, x, i) => s + x * after[i]!, 0) / (norm(before) * norm(after));
        expect(cosine).toBeGreaterThan(1 - 1e-6);
      }),
    );
  });

  test.each([
    ['a zero change', Float32Array.of(1, 2), Float32Array.of(1, 2), 1, [1, 2]],
    ['a change within the bound', Float32Array.of(4, 6), Float32Array.of(1, 2), 5, [4, 6]],
    ['a 3-4-5 change halved', Float32Array.of(4, 6), Float32Array.of(1, 2), 2.5, [2.5, 4]],
  ])('%s', (_, update, global, maxNorm, expected) => {
    Array.from(clipUpdate(update, global, maxNorm)).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 6));
  });

  test.each([
    [
      'maxNorm 0',
      () => clipUpdate(Float32Array.of(1), Float32Array.of(0), 0),
      ErrorCode.InvalidConfig,
      /^maxNorm must be a finite number > 0 \(got 0\)$/,
    ],
    ['a negative maxNorm', () => clipUpdate(Float32Array.of(1), Float32Array.of(0), -1), ErrorCode.InvalidConfig, /maxNorm .*\(got -1\)/],
    ['a NaN maxNorm', () => clipUpdate(Float32Array.of(1), Float32Array.of(0), NaN), ErrorCode.InvalidConfig, /maxNorm .*\(got NaN\)/],
    [
      'an infinite maxNorm',
      () => clipUpdate(Float32Array.of(1), Float32Array.of(0), Infinity),
      ErrorCode.InvalidConfig,
      /maxNorm .*\(got Infinity\)/,
    ],
    [
      'an update of another length',
      () => clipUpdate(Float32Array.of(1, 2), Float32Array.of(0), 1),
      ErrorCode.WeightsMismatch,
      /update has 2 values but the global model has 1/,
    ],
    ['a NaN update', () => clipUpdate(Float32Array.of(NaN), Float32Array.of(0), 1), ErrorCode.NonFiniteWeights, /non-finite norm \(NaN\)/],
  ])('refuses %s', (_, fn, code, message) => {
    expectFtlError(fn, code, message);
  });
});
