import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { RdpAccountant } from './accountant.js';
import { noiseMultiplierFor } from './noise-multiplier.js';
import type { SampledGaussian } from './params.js';

/** Opacus's default alphas: 1.1 … 10.9 and 12 … 63. */
const OPACUS_ORDERS = [...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10), ...Array.from({ length: 52 }, (_, k) => 12 + k)];

const round = (noiseMultiplier: number, sampleRate: number, steps: number): SampledGaussian => ({ noiseMultiplier, sampleRate, steps });

describe('noiseMultiplierFor', () => {
  // Opacus accountants_test (test_get_noise_multiplier_rdp_epochs / _steps): ε 8 at δ 1e-5, q 0.04, over
  // int(90 / 0.04) = 2250 steps → 1.416 and over 2000 steps → 1.3562, with Opacus's orders. Opacus stops
  // its bisection within 0.01 of the target ε, so its σ sits up to ~0.001 above the exact one.
  test.each([
    [2250, 1.416],
    [2000, 1.3562],
  ])('Opacus: ε 8 at δ 1e-5, q 0.04 over %d steps needs σ ≈ %d', (steps, expected) => {
    const sigma = noiseMultiplierFor({ epsilon: 8, delta: 1e-5, sampleRate: 0.04, steps, orders: OPACUS_ORDERS });
    expect(Math.abs(sigma - expected)).toBeLessThan(1e-3);
    const spent = new RdpAccountant({ orders: OPACUS_ORDERS }).step(round(sigma, 0.04, steps)).epsilon(1e-5).epsilon;
    expect(spent).toBeLessThanOrEqual(8);
    expect(spent).toBeGreaterThan(8 - 1e-3);
  });

  test('inverts epsilon: the σ found spends the budget to within the tolerance, never beyond it', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.2, max: 20, noNaN: true }),
        fc.constantFrom(1e-5, 1e-6),
        fc.double({ min: 1e-3, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.constantFrom('improved' as const, 'classic' as const),
        (epsilon, delta, sampleRate, steps, conversion) => {
          const epsilonTolerance = 1e-3;
          const sigma = noiseMultiplierFor({ epsilon, delta, sampleRate, steps, conversion, epsilonTolerance });
          const spent = new RdpAccountant().step(round(sigma, sampleRate, steps)).epsilon(delta, { conversion }).epsilon;
          expect(spent).toBeLessThanOrEqual(epsilon);
          expect(spent).toBeGreaterThanOrEqual(epsilon - epsilonTolerance);
        },
      ),
      { numRuns: 30 },
    );
  });

  test.each([
    [{ epsilon: 0, delta: 1e-5, sampleRate: 0.1, steps: 10 }, /^noise multiplier search\.epsilon must be a positive number \(got number 0\)$/],
    [{ epsilon: 1, delta: 1e-5, sampleRate: 0, steps: 10 }, /^noise multiplier search\.sampleRate must be a number in \(0, 1\] \(got number 0\)$/],
    [{ epsilon: 1, delta: 1e-5, sampleRate: 0.1, steps: 0 }, /^noise multiplier search\.steps must be an integer ≥ 1 \(got number 0\)$/],
    [{ epsilon: 1, delta: 1.5, sampleRate: 0.1, steps: 10 }, /^noise multiplier search\.delta must be a number in \(0, 1\) \(got number 1\.5\)$/],
    [{ epsilon: 1, delta: 1e-5, sampleRate: 0.1, steps: 10, epsilonTolerance: -1 }, /epsilonTolerance must be a positive number/],
    // The classic conversion cannot go below −log δ/(α_max − 1) however large σ is (≈ 0.045 at α 256).
    [
      { epsilon: 0.01, delta: 1e-5, sampleRate: 0.1, steps: 10, conversion: 'classic' as const },
      /^no noise multiplier up to 1000000 keeps ε ≤ 0\.01 at δ = 0\.00001 over 10 steps at sample rate 0\.1; raise the budget or train fewer steps$/,
    ],
  ])('refuses %o', (search, message) => {
    expectFtlError(() => noiseMultiplierFor(search), ErrorCode.InvalidConfig, message);
  });
});
