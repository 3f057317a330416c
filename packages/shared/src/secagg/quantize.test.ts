import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { ErrorCode } from '../errors.js';
import { createRng } from '../random.js';
import { addInto, checkNoWrap, dequantizeSum, quantize, ringScale, subtractFrom } from './quantize.js';

const HALF_RING = 2 ** 31;

/** Sites' inputs: n vectors of `len` values, some outside [−R, R] so clipping matters. */
const inputs = fc
  .record({ n: fc.integer({ min: 1, max: 60 }), len: fc.integer({ min: 1, max: 12 }), clipRange: fc.double({ min: 1e-3, max: 1e3, noNaN: true }) })
  .chain(({ n, len, clipRange }) =>
    fc.record({
      clipRange: fc.constant(clipRange),
      values: fc.array(fc.array(fc.double({ min: -2 * clipRange, max: 2 * clipRange, noNaN: true }), { minLength: len, maxLength: len }), {
        minLength: n,
        maxLength: n,
      }),
      seed: fc.integer(),
    }),
  );

const clip = (v: number, r: number) => Math.max(-r, Math.min(r, v));

describe('fixed-point quantisation into Z_2^32', () => {
  test.each(['nearest', 'stochastic'] as const)(
    'the ring sum of %s-rounded inputs dequantises to their clipped float sum within n/scale per coordinate',
    (mode) => {
      fc.assert(
        fc.property(inputs, ({ clipRange, values, seed }) => {
          const n = values.length;
          const scale = ringScale({ clipRange, totalWeight: n, sites: n });
          const rng = createRng(seed);
          const rounding = mode === 'nearest' ? 'nearest' : { stochastic: () => rng.next() };
          const sum = new Uint32Array(values[0]!.length);
          for (const v of values) addInto(sum, quantize(v, { clipRange, scale }, { rounding }));
          const got = dequantizeSum(sum, scale);
          got.forEach((g, i) => {
            const exact = values.reduce((s, v) => s + clip(v[i]!, clipRange), 0);
            // Float rounding of the exact sum itself is far below one quantum.
            expect(Math.abs(g - exact)).toBeLessThanOrEqual(n / scale + 1e-9 * n * clipRange);
          });
        }),
      );
    },
  );

  test('the bound is the one stated: n·R·scale + n < 2^31, with the largest power of two that keeps it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 1e-4, max: 1e4, noNaN: true }),
        fc.integer({ min: 1, max: 1000 }),
        (n, r, w) => {
          const total = n * w;
          const scale = ringScale({ clipRange: r, totalWeight: total, sites: n });
          expect(Math.log2(scale)).toBe(Math.round(Math.log2(scale)));
          expect(total * r * scale + n).toBeLessThan(HALF_RING);
          expect(total * r * scale * 2 + n).toBeGreaterThanOrEqual(HALF_RING - 1);
        },
      ),
    );
  });

  test('the worst case, every site at ±R with its weight, sums exactly without wrapping', () => {
    const n = 50;
    const weights = Array.from({ length: n }, (_, i) => 1 + ((i * 37) % 400));
    const totalWeight = weights.reduce((a, b) => a + b, 0);
    const clipRange = 0.75;
    const scale = ringScale({ clipRange, totalWeight, sites: n });
    for (const sign of [1, -1]) {
      const sum = new Uint32Array(1);
      // Values beyond R are clipped to R first: the bound holds whatever a site's update is.
      for (const w of weights) addInto(sum, quantize([sign * 5], { clipRange, scale }, { weight: w }));
      expect(dequantizeSum(sum, scale)[0]).toBeCloseTo(sign * clipRange * totalWeight, 6);
    }
  });

  test('a scale past the bound wraps, and checkNoWrap refuses it', () => {
    const n = 4;
    const scale = 2 * ringScale({ clipRange: 1, totalWeight: n, sites: n });
    const sum = new Uint32Array(1);
    for (let i = 0; i < n; i++) addInto(sum, quantize([1], { clipRange: 1, scale }));
    expect(dequantizeSum(sum, scale)[0]).toBeLessThan(0);
    expectFtlError(
      () => checkNoWrap({ clipRange: 1, scale }, { totalWeight: n, sites: n }),
      ErrorCode.InvalidConfig,
      /wrap in 32 bits .*lower the scale or clipRange/,
    );
    expect(() => checkNoWrap({ clipRange: 1, scale: scale / 2 }, { totalWeight: n, sites: n })).not.toThrow();
  });

  test('stochastic rounding is unbiased: the mean of many roundings of 0.3 quanta is 0.3 quanta', () => {
    const rng = createRng(7);
    const q = quantize(new Float64Array(20_000).fill(0.3), { clipRange: 1, scale: 1 }, { rounding: { stochastic: () => rng.next() } });
    const mean = q.reduce((s, w) => s + (w | 0), 0) / q.length;
    expect(mean).toBeGreaterThan(0.28);
    expect(mean).toBeLessThan(0.32);
    expect(new Set(q)).toEqual(new Set([0, 1]));
  });

  test('negative values are two’s complement words and subtraction undoes addition', () => {
    const q = quantize([-1, 0.5], { clipRange: 1, scale: 4 });
    expect(Array.from(q)).toEqual([2 ** 32 - 4, 2]);
    const a = Uint32Array.of(5, 2 ** 32 - 1);
    subtractFrom(addInto(a, q), q);
    expect(Array.from(a)).toEqual([5, 2 ** 32 - 1]);
  });

  test('NaN is refused, a bad clip range or site count too', () => {
    expectFtlError(() => quantize([0, Number.NaN], { clipRange: 1, scale: 2 }), ErrorCode.NonFiniteWeights, /value 1 is NaN/);
    expectFtlError(() => ringScale({ clipRange: 0, totalWeight: 1, sites: 1 }), ErrorCode.InvalidConfig, /clipRange must be a finite number > 0/);
    expectFtlError(() => ringScale({ clipRange: 1, totalWeight: 1, sites: 0 }), ErrorCode.InvalidConfig, /sites must be a positive integer/);
    expectFtlError(() => ringScale({ clipRange: 1e30, totalWeight: 1e6, sites: 2 }), ErrorCode.InvalidConfig, /lower clipRange/);
  });
});
