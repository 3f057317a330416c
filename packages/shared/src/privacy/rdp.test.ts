import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError, ftlErrorMessage } from '../../test-support/expect-ftl-error.js';
import type { SampledGaussian } from './params.js';
import { composeRdp, DEFAULT_RDP_ORDERS, epsilonFromRdp, logAFractionalOrder, logAIntegerOrder, sampledGaussianRdp } from './rdp.js';

/** Orders 1.1, 1.2, …, 10.9 and 12, …, 63: Opacus's default alphas, and TensorFlow Privacy's MNIST tutorial's orders. */
const OPACUS_ORDERS = [...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10), ...Array.from({ length: 52 }, (_, k) => 12 + k)];
/** The orders of TensorFlow Privacy's `compute_dp_sgd_privacy_lib`: 1.25 … 4.5, 5 … 63, 128, 256, 512. */
const TF_DP_SGD_ORDERS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...Array.from({ length: 59 }, (_, k) => 5 + k), 128, 256, 512];

const rdpOf = (noiseMultiplier: number, sampleRate: number, steps: number, orders: readonly number[]) =>
  sampledGaussianRdp({ noiseMultiplier, sampleRate, steps }, orders);
const relativeError = (actual: number, expected: number) => Math.abs(actual - expected) / Math.abs(expected);

describe('RDP of the sampled Gaussian mechanism', () => {
  test('with every record sampled (q = 1) it is the Gaussian mechanism’s α/(2σ²), exactly', () => {
    expect(rdpOf(10, 1, 1, [20])).toEqual([0.1]); // TensorFlow Privacy's test_compute_rdp_no_sampling
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 1000, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.constantFrom(...DEFAULT_RDP_ORDERS, 1.01, 7.3, 9999),
        (sigma, steps, alpha) => {
          expect(rdpOf(sigma, 1, steps, [alpha])).toEqual([steps * (alpha / (2 * sigma * sigma))]);
        },
      ),
    );
  });

  test('with no record sampled (q = 0), or no step, it is 0 at every order', () => {
    expect(rdpOf(10, 0, 1, [20])).toEqual([0]); // TensorFlow Privacy's test_compute_rdp_no_data
    expect(rdpOf(0.5, 0, 1000, DEFAULT_RDP_ORDERS).every((r) => r === 0)).toBe(true);
    expect(rdpOf(0.5, 0.3, 0, DEFAULT_RDP_ORDERS).every((r) => r === 0)).toBe(true);
  });

  test('matches TensorFlow Privacy’s rdp_accountant tests (test_compute_rdp_scalar, test_compute_rdp_sequence)', () => {
    expect(rdpOf(2, 0.1, 10, [5])[0]).toBeCloseTo(0.07737, 5);
    const rdp = rdpOf(2.5, 0.01, 50, [1.5, 2.5, 5, 50, 100]);
    [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307].forEach((expected, i) => expect(Math.abs(rdp[i]! - expected)).toBeLessThan(1e-5));
  });

  // log A_α by numerical integration of E_{z∼N(0,σ²)}[((1 − q) + q·e^((2z−1)/2σ²))^α] in mpmath at 60 digits
  // (the exact binomial sum for the integer orders), at the parameters of TensorFlow Privacy's
  // test_compute_log_a_equals_mp and a few more. The integer sum is exact to rounding; the fractional
  // series stops at terms below e⁻³⁰, an absolute error that is a relative one of up to ~1e-6 where
  // log A is ~1e-8 (and the RDP correspondingly negligible).
  test.each([
    [1e-6, 0.1, 256, 3260463.2292971606, 1e-13],
    [1e-6, 1, 27, 8.769511304848498e-10, 1e-12],
    [1e-3, 1, 2, 0.0000017182803522145153, 1e-12],
    [0.01, 10, 20, 0.00019129699912842963, 1e-12],
    [0.99, 0.1, 256, 3263997.427114021, 1e-13],
    [0.1, 2, 5, 0.030947873959183463, 1e-13],
    [1e-7, 0.1, 1.01, 4.003412322526399e-8, 1e-6],
    [1e-5, 0.1, 256.1, 3263607.0397884212, 1e-13],
    [1e-4, 1, 1.5, 6.4426869538366495e-9, 1e-6],
    [0.1, 100, 20.5, 0.00019991818458068295, 1e-10],
    [0.999, 100, 256.1, 3.260108037973113, 1e-12],
    [0.01, 2.5, 1.5, 0.0000065007089718803975, 1e-9],
    [0.5, 0.7, 3.5, 6.525117898224445, 1e-13],
    [0.02, 1.1, 7.25, 0.015008033717765525, 1e-10],
  ])('log A at q %d, σ %d, α %d is %d (relative error ≤ %d)', (q, sigma, alpha, expected, tolerance) => {
    const logA = Number.isInteger(alpha) ? logAIntegerOrder(q, sigma, alpha) : logAFractionalOrder(q, sigma, alpha);
    expect(relativeError(logA, expected)).toBeLessThanOrEqual(tolerance);
  });

  test('the fractional series and the binomial expansion agree at integer orders', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-4, max: 0.999, noNaN: true }),
        fc.double({ min: 0.3, max: 50, noNaN: true }),
        fc.integer({ min: 2, max: 64 }),
        (q, sigma, alpha) => {
          const exact = logAIntegerOrder(q, sigma, alpha);
          // The series sums terms near 1 in log space: ~1e-16 absolute, which is relative for a tiny log A.
          expect(Math.abs(logAFractionalOrder(q, sigma, alpha) - exact)).toBeLessThanOrEqual(1e-9 * exact + 1e-15);
        },
      ),
    );
    // At 2, 3 and 4 over a grid too, including q = ½ where the series' first terms are all tiny.
    for (const alpha of [2, 3, 4, 64])
      for (const q of [1e-3, 0.01, 0.1, 0.5, 0.9])
        for (const sigma of [0.5, 1, 2, 10, 50]) {
          const exact = logAIntegerOrder(q, sigma, alpha);
          expect(Math.abs(logAFractionalOrder(q, sigma, alpha) - exact), `α ${alpha}, q ${q}, σ ${sigma}`).toBeLessThanOrEqual(1e-9 * exact + 1e-15);
        }
  });

  test('grows with the order, fractional and integer orders together', () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-3, max: 1, noNaN: true }), fc.double({ min: 0.5, max: 20, noNaN: true }), (q, sigma) => {
        const rdp = rdpOf(sigma, q, 1, DEFAULT_RDP_ORDERS);
        for (let i = 1; i < rdp.length; i++) expect(rdp[i]!).toBeGreaterThanOrEqual(rdp[i - 1]! * (1 - 1e-9) - 1e-15);
      }),
    );
  });

  test('of a ledger is the sum over its entries (TensorFlow Privacy’s heterogeneous-RDP test)', () => {
    // compute_heterogenous_rdp([0, 1], [10, 10], [1, 1], 20) == 0.1
    expect(
      composeRdp(
        [
          { sampleRate: 0, noiseMultiplier: 10, steps: 1 },
          { sampleRate: 1, noiseMultiplier: 10, steps: 1 },
        ],
        [20],
      ),
    ).toEqual([0.1]);
    const a: SampledGaussian = { noiseMultiplier: 1.1, sampleRate: 0.01, steps: 300 };
    const b: SampledGaussian = { noiseMultiplier: 0.8, sampleRate: 0.05, steps: 40 };
    const sum = composeRdp([a, b]);
    const parts = [sampledGaussianRdp(a), sampledGaussianRdp(b)];
    sum.forEach((r, i) => expect(r).toBeCloseTo(parts[0]![i]! + parts[1]![i]!, 12));
    expect(composeRdp([])).toEqual(DEFAULT_RDP_ORDERS.map(() => 0));
  });
});

describe('RDP to (ε, δ)', () => {
  // TensorFlow Privacy's tutorials/README.md: the MNIST DP-SGD tutorial (batch 256 of 60000, so
  // q = 256/60000, 60000 // 256 = 234 steps an epoch, δ = 1e-5), whose compute_epsilon used the classic
  // conversion over orders 1.1 … 10.9 and 12 … 63. Its printed figures have two decimals: "epsilon is:
  // 1.00" after 1 epoch, 1.04 after 2 and 2.92 after 60 at noise multiplier 1.12, and the table's 9.74
  // (σ 0.6, 30 epochs; 9.7469 here, so the table cut rather than rounded) and 1.20 (σ 1.2, 10 epochs).
  test.each([
    [1.12, 1, 1.0, 13],
    [1.12, 2, 1.04, 13],
    [1.12, 60, 2.92, 9.1],
    [0.6, 30, 9.74, 2.9],
    [1.2, 10, 1.2, 15],
  ])('MNIST tutorial: σ %d for %d epochs gives ε %d (classic)', (sigma, epochs, figure, order) => {
    const spent = epsilonFromRdp(OPACUS_ORDERS, rdpOf(sigma, 256 / 60000, epochs * 234, OPACUS_ORDERS), 1e-5, 'classic');
    expect(Math.abs(spent.epsilon - figure)).toBeLessThan(0.01);
    expect(spent.order).toBe(order);
  });

  // TensorFlow Privacy's compute_dp_sgd_privacy_test (test_compute_dp_sgd_privacy): n, batch size, σ,
  // epochs, δ → ε and order from its RDP accountant (improved conversion), steps = ⌈epochs·n/batch⌉.
  test.each([
    [60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19],
    [100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13],
    [100000000, 1024, 0.1, 10, 1e-7, 5907982.3113978775, 1.25],
  ])('compute_dp_sgd_privacy(n %d, batch %d, σ %d, %d epochs, δ %d) = %d at order %d', (n, batch, sigma, epochs, delta, epsilon, order) => {
    const steps = Math.ceil((epochs * n) / batch);
    const spent = epsilonFromRdp(TF_DP_SGD_ORDERS, rdpOf(sigma, batch / n, steps, TF_DP_SGD_ORDERS), delta);
    expect(relativeError(spent.epsilon, epsilon)).toBeLessThan(1e-9);
    expect(spent.order).toBe(order);
  });

  test('matches Opacus: its RDP accountant test and the example in its rdp analysis docstring', () => {
    // accountants_test.test_rdp_accountant: σ 1.5, q 0.04, int(90 / 0.04) = 2250 steps, δ 1e-5 → 7.32911117143.
    const spent = epsilonFromRdp(OPACUS_ORDERS, rdpOf(1.5, 0.04, 2250, OPACUS_ORDERS), 1e-5);
    expect(spent.epsilon).toBeCloseTo(7.32911117143, 9);
    // opacus.accountants.analysis.rdp: [(q 1e-5, σ 1.0, 10 steps), (q 1e-4, σ 3.0, 4 steps)] over orders 2 … 32 at δ 1e-5 → (0.336, 23).
    const orders = Array.from({ length: 31 }, (_, k) => k + 2);
    const ledger = [
      { sampleRate: 1e-5, noiseMultiplier: 1.0, steps: 10 },
      { sampleRate: 1e-4, noiseMultiplier: 3.0, steps: 4 },
    ];
    const docs = epsilonFromRdp(orders, composeRdp(ledger, orders), 1e-5);
    expect(docs.epsilon).toBeCloseTo(0.336, 3);
    expect(docs.order).toBe(23);
  });

  test('matches TensorFlow Privacy’s get_privacy_spent tests', () => {
    // Constant RDP 1.1 over orders 2 … 32 is pure DP: the largest order wins, ε = 1.32783806176 at δ 1e-5.
    const orders = Array.from({ length: 31 }, (_, k) => k + 2);
    const constant = epsilonFromRdp(
      orders,
      orders.map(() => 1.1),
      1e-5,
    );
    expect(constant.epsilon).toBeCloseTo(1.32783806176, 10);
    expect(constant.order).toBe(32);
    // The Gaussian mechanism (q = 1) at σ 4.530877117 is (1, 1e-6)-DP over a fine grid of orders; this
    // grid (1000 orders 0.04 apart) is coarser than the test's, so ε is 1 to 1e-6 rather than 1e-7.
    const fine = Array.from({ length: 1000 }, (_, k) => 1.04 + k * 0.04);
    expect(Math.abs(epsilonFromRdp(fine, rdpOf(4.530877117, 1, 1, fine), 1e-6).epsilon - 1)).toBeLessThan(1e-6);
    // test_check_composition: 40000 steps at (q 1e-4, σ 0.4) then 100 at (q 0.1, σ 2); the classic
    // conversion gave 8.509656 at order 2.5, which the improved one must not exceed.
    const tfOrders = [1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 64, 256];
    const rdp = composeRdp(
      [
        { sampleRate: 1e-4, noiseMultiplier: 0.4, steps: 40000 },
        { sampleRate: 0.1, noiseMultiplier: 2, steps: 100 },
      ],
      tfOrders,
    );
    const classic = epsilonFromRdp(tfOrders, rdp, 1e-5, 'classic');
    expect(classic.epsilon).toBeCloseTo(8.509656, 6);
    expect(classic.order).toBe(2.5);
    expect(epsilonFromRdp(tfOrders, rdp, 1e-5).epsilon).toBeLessThanOrEqual(8.509656);
  });

  test('the classic conversion is RDP − log δ/(α − 1) and the improved one its refinement, order by order', () => {
    expect(epsilonFromRdp([3], [0.5], 1e-5, 'classic')).toEqual({ epsilon: 0.5 - Math.log(1e-5) / 2, delta: 1e-5, order: 3, conversion: 'classic' });
    expect(epsilonFromRdp([3], [0.5], 1e-5).epsilon).toBeCloseTo(0.5 + Math.log(2 / 3) - (Math.log(1e-5) + Math.log(3)) / 2, 14);
  });

  test('nothing spent is ε 0 with the improved conversion; an infinite RDP is an infinite ε', () => {
    expect(epsilonFromRdp(DEFAULT_RDP_ORDERS, composeRdp([]), 1e-5).epsilon).toBe(0);
    expect(epsilonFromRdp([2, 3], [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY], 1e-5).epsilon).toBe(Number.POSITIVE_INFINITY);
  });

  const mechanism = fc.record({
    noiseMultiplier: fc.double({ min: 0.3, max: 20, noNaN: true }),
    sampleRate: fc.double({ min: 1e-4, max: 1, noNaN: true }),
    steps: fc.integer({ min: 1, max: 100_000 }),
  });
  const delta = fc.constantFrom(1e-3, 1e-5, 1e-7, 1e-10);
  const conversion = fc.constantFrom('improved' as const, 'classic' as const);
  const epsilonOf = (m: SampledGaussian, d: number, c: 'improved' | 'classic') =>
    epsilonFromRdp(DEFAULT_RDP_ORDERS, sampledGaussianRdp(m), d, c).epsilon;
  /** b ≥ a up to rounding. */
  const atLeast = (b: number, a: number) => expect(b).toBeGreaterThanOrEqual(a * (1 - 1e-9));

  test('ε grows with the steps and the sample rate, and falls as the noise grows', () => {
    fc.assert(
      fc.property(mechanism, delta, conversion, fc.double({ min: 1.01, max: 10, noNaN: true }), (m, d, c, factor) => {
        const base = epsilonOf(m, d, c);
        atLeast(epsilonOf({ ...m, steps: Math.ceil(m.steps * factor) }, d, c), base);
        atLeast(epsilonOf({ ...m, sampleRate: Math.min(1, m.sampleRate * factor) }, d, c), base);
        atLeast(base, epsilonOf({ ...m, noiseMultiplier: m.noiseMultiplier * factor }, d, c));
      }),
      { numRuns: 60 },
    );
  });

  test('ε falls as δ grows, and the improved conversion never exceeds the classic one', () => {
    fc.assert(
      fc.property(fc.array(mechanism, { minLength: 1, maxLength: 3 }), delta, (ledger, d) => {
        const rdp = composeRdp(ledger);
        const improved = epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, d);
        const classic = epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, d, 'classic');
        expect(improved.epsilon).toBeLessThanOrEqual(classic.epsilon);
        atLeast(improved.epsilon, epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, d * 10).epsilon);
        expect(DEFAULT_RDP_ORDERS).toContain(improved.order);
      }),
      { numRuns: 60 },
    );
  });
});

describe('bad input is refused with a one-line INVALID_CONFIG naming the field', () => {
  test.each([
    [{ noiseMultiplier: 0, sampleRate: 0.1, steps: 1 }, /^mechanism\.noiseMultiplier must be a positive number \(got number 0\)$/],
    [{ noiseMultiplier: -1, sampleRate: 0.1, steps: 1 }, /noiseMultiplier must be a positive number \(got number -1\)/],
    [{ noiseMultiplier: Number.NaN, sampleRate: 0.1, steps: 1 }, /noiseMultiplier must be a positive number \(got number NaN\)/],
    [{ noiseMultiplier: Number.POSITIVE_INFINITY, sampleRate: 0.1, steps: 1 }, /noiseMultiplier must be a positive number/],
    [{ noiseMultiplier: 1, sampleRate: -0.1, steps: 1 }, /^mechanism\.sampleRate must be a number in \[0, 1\] \(got number -0\.1\)$/],
    [{ noiseMultiplier: 1, sampleRate: 1.5, steps: 1 }, /sampleRate must be a number in \[0, 1\] \(got number 1\.5\)/],
    [{ noiseMultiplier: 1, sampleRate: Number.NaN, steps: 1 }, /sampleRate must be a number in \[0, 1\] \(got number NaN\)/],
    [{ noiseMultiplier: 1, sampleRate: 0.1, steps: 1.5 }, /^mechanism\.steps must be an integer ≥ 0 \(got number 1\.5\)$/],
    [{ noiseMultiplier: 1, sampleRate: 0.1, steps: -1 }, /steps must be an integer ≥ 0 \(got number -1\)/],
    [{ noiseMultiplier: 1, sampleRate: 0.1, steps: Number.NaN }, /steps must be an integer ≥ 0 \(got number NaN\)/],
    [{ noiseMultiplier: 1, sampleRate: 0.1 }, /steps must be an integer ≥ 0 \(got undefined\)/],
    [null, /^mechanism must be an object \(got null\)$/],
  ])('mechanism %o', (m, message) => {
    expectFtlError(() => sampledGaussianRdp(m as SampledGaussian), ErrorCode.InvalidConfig, message);
  });

  test.each([
    [0, /^delta must be a number in \(0, 1\) \(got number 0\)$/],
    [1, /delta must be a number in \(0, 1\) \(got number 1\)/],
    [-1e-5, /delta must be a number in \(0, 1\)/],
    [Number.NaN, /delta must be a number in \(0, 1\) \(got number NaN\)/],
  ])('δ %d', (d, message) => {
    expectFtlError(() => epsilonFromRdp([2], [0.1], d), ErrorCode.InvalidConfig, message);
  });

  test.each([
    [[], /^orders must be a non-empty array of orders/],
    [[1], /^orders\[0\] must be a number in \(1, 10000\] \(got number 1\)$/],
    [[2, 0.5], /^orders\[1\] must be a number in \(1, 10000\]/],
    [[2, Number.NaN], /orders\[1\] must be a number in \(1, 10000\] \(got number NaN\)/],
    [[2, 1e5], /orders\[1\] must be a number in \(1, 10000\]/],
    [[2, 3, 2], /orders must be an array of distinct orders/],
  ])('orders %o', (orders, message) => {
    expectFtlError(() => sampledGaussianRdp({ noiseMultiplier: 1, sampleRate: 0.1, steps: 1 }, orders), ErrorCode.InvalidConfig, message);
  });

  test('a ledger entry is named by its index; an RDP that does not fit the orders is refused', () => {
    expect(
      ftlErrorMessage(
        () =>
          composeRdp([
            { noiseMultiplier: 1, sampleRate: 0.1, steps: 1 },
            { noiseMultiplier: 1, sampleRate: 2, steps: 1 },
          ]),
        ErrorCode.InvalidConfig,
      ),
    ).toBe('ledger[1].sampleRate must be a number in [0, 1] (got number 2)');
    expectFtlError(() => epsilonFromRdp([2, 3], [0.1], 1e-5), ErrorCode.InvalidConfig, /^rdp has 1 values for 2 orders/);
    expectFtlError(() => epsilonFromRdp([2], [Number.NaN], 1e-5), ErrorCode.InvalidConfig, /^rdp\[0\] must be a number ≥ 0 \(got NaN\)$/);
    expectFtlError(
      () => epsilonFromRdp([2], [0.1], 1e-5, 'tight' as 'classic'),
      ErrorCode.InvalidConfig,
      /^conversion must be "improved" or "classic"/,
    );
  });
});
