import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { logErfc } from './log-erfc.js';
import { log1pExp, logAdd, logExpm1, logSub, SignedLogSum } from './log-space.js';

const NEG_INF = Number.NEGATIVE_INFINITY;
const moderate = fc.double({ min: -300, max: 300, noNaN: true });

describe('log-space arithmetic', () => {
  test('logAdd and logSub agree with plain arithmetic where it does not overflow', () => {
    fc.assert(
      fc.property(moderate, moderate, (x, y) => {
        expect(logAdd(x, y)).toBeCloseTo(Math.log(Math.exp(x) + Math.exp(y)), 10);
        const [hi, lo] = x >= y ? [x, y] : [y, x];
        if (hi - lo > 1e-6) expect(logSub(hi, lo)).toBeCloseTo(Math.log(Math.exp(hi) - Math.exp(lo)), 8);
      }),
    );
  });

  test('logAdd and logSub stay finite far beyond what a double holds', () => {
    expect(logAdd(1e6, 1e6)).toBeCloseTo(1e6 + Math.LN2, 9);
    expect(logAdd(1e6, 0)).toBe(1e6);
    expect(logSub(1e6 + Math.LN2, 1e6)).toBeCloseTo(1e6, 9);
    expect(logSub(5000, 10)).toBe(5000);
  });

  test('−∞ is zero: adding or subtracting it changes nothing, and x − x is zero', () => {
    expect(logAdd(NEG_INF, 3)).toBe(3);
    expect(logAdd(3, NEG_INF)).toBe(3);
    expect(logAdd(NEG_INF, NEG_INF)).toBe(NEG_INF);
    expect(logSub(3, NEG_INF)).toBe(3);
    expect(logSub(3, 3)).toBe(NEG_INF);
  });

  test('logSub refuses a negative difference instead of returning NaN', () => {
    expect(() => logSub(1, 2)).toThrow(RangeError);
  });

  test('logExpm1 and log1pExp keep their precision at both ends', () => {
    expect(logExpm1(1e-20)).toBeCloseTo(Math.log(1e-20), 12);
    expect(logExpm1(1)).toBeCloseTo(Math.log(Math.E - 1), 14);
    expect(logExpm1(800)).toBe(800);
    expect(log1pExp(-800)).toBe(0);
    expect(log1pExp(-40)).toBeCloseTo(Math.exp(-40), 25);
    expect(log1pExp(800)).toBe(800);
    expect(log1pExp(0)).toBeCloseTo(Math.LN2, 15);
  });

  test('a signed sum of logs gives the log of the signed sum, and NaN when it is negative', () => {
    const sum = new SignedLogSum();
    for (const [sign, v] of [
      [1, 5],
      [-1, 2],
      [1, 0.5],
      [0, 100],
    ] as const)
      sum.add(sign, Math.log(v));
    expect(sum.log).toBeCloseTo(Math.log(3.5), 14);
    sum.add(-1, Math.log(10));
    expect(sum.log).toBeNaN();
  });
});

describe('logErfc', () => {
  // log(erfc(x)) from mpmath at 40 significant digits, across Cody's three ranges (|x| ≤ 0.46875, ≤ 4,
  // beyond) and far into the tail, where erfc itself underflows.
  test.each([
    [-30, Math.LN2],
    [-5, 0.6931471805591766],
    [-1, 0.6112323176780705],
    [-0.46875, 0.40052859235130783],
    [-0.3, 0.28414589714140825],
    [0, 0],
    [0.1, -0.1193049737373956],
    [0.46875, -0.6784821856143961],
    [0.5, -0.7350111298370844],
    [1, -1.8496055099332482],
    [2, -5.364941264616638],
    [3.9, -17.173871216435405],
    [4, -17.987778312103007],
    [4.5, -22.34976830343594],
    [10, -102.87988902484489],
    [26, -679.8311997631943],
    [30, -903.9741171106439],
    [100, -10005.177585122665],
    [1000, -1000007.4801207219],
  ])('log erfc(%d) = %d', (x, expected) => {
    expect(Math.abs(logErfc(x) - expected)).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(expected)));
  });

  test('is the log of erfc(x) + erfc(−x) = 2, and falls as x grows (until it rounds to log 2 left of −5)', () => {
    fc.assert(
      fc.property(fc.double({ min: -6, max: 6, noNaN: true }), (x) => {
        expect(Math.exp(logErfc(x)) + Math.exp(logErfc(-x))).toBeCloseTo(2, 14);
      }),
    );
    fc.assert(
      fc.property(fc.double({ min: -5, max: 1e4, noNaN: true }), fc.double({ min: 1e-3, max: 10, noNaN: true }), (x, d) => {
        expect(logErfc(x + d)).toBeLessThan(logErfc(x));
      }),
    );
  });

  test('the infinities and NaN', () => {
    expect(logErfc(Number.POSITIVE_INFINITY)).toBe(NEG_INF);
    expect(logErfc(NEG_INF)).toBe(Math.LN2);
    expect(logErfc(Number.NaN)).toBeNaN();
  });
});
