import { l2Norm, updateDelta, type Weights } from '@ftl/shared';
import { dequantizeSum } from '@ftl/shared/secagg';
import { describe, expect, test } from 'vitest';
import { DpRandom } from './dp-sgd.js';
import { addNoiseShare, secureInput } from './secure-aggregation.js';

const specs = [{ name: 'head/kernel', shape: [4, 2], dtype: 'float32' as const }];
const global: Weights = { specs, values: Float32Array.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.01, -0.01]) };
const trainedBy = (steps: number[]): Weights => ({ specs, values: global.values.map((v, i) => v + steps[i]!) });
const instruction = { self: 1, neighbours: [2, 3], threshold: 2, clipRange: 0.5, scale: 2 ** 20, weight: 3, rounding: 'nearest' as const };

/** The standard deviation of `values` about 0. */
const rms = (values: ArrayLike<number>) => Math.sqrt(Array.from(values).reduce((s, v) => s + v * v, 0) / values.length);

describe('a site’s input to secure aggregation', () => {
  test('is its change from the global weights, every value clipped to ±R, times its weight and the scale', () => {
    const steps = [0.01, -0.02, 0.7, -0.9, 0, 0.25, -0.5, 1e-6];
    const words = secureInput(trainedBy(steps), global, instruction, undefined);
    const back = dequantizeSum(words, instruction.scale);
    const change = updateDelta(trainedBy(steps).values, global.values);
    change.forEach((d, i) => expect(back[i]).toBeCloseTo(3 * Math.max(-0.5, Math.min(0.5, d)), 5));
  });

  test('with client-level DP is the change clipped to S in L2, with central noise plus this site’s share of the noise', () => {
    const steps = [0.3, -0.3, 0.3, -0.3, 0.3, -0.3, 0.3, -0.3]; // ‖Δ‖ ≈ 0.85
    const dp = { clipNorm: 0.2, noise: 'central' as const, noiseMultiplier: 1 };
    const quiet = secureInput(
      trainedBy(steps),
      global,
      { ...instruction, weight: 1, clipRange: 5 },
      { ...dp, noise: 'local', noiseMultiplier: 1e-9 },
      7,
    );
    expect(l2Norm(Float32Array.from(dequantizeSum(quiet, instruction.scale)))).toBeCloseTo(0.2, 4);
    const a = secureInput(trainedBy(steps), global, { ...instruction, weight: 1, clipRange: 5 }, dp, 7);
    const b = secureInput(trainedBy(steps), global, { ...instruction, weight: 1, clipRange: 5 }, dp, 7);
    const secret = secureInput(trainedBy(steps), global, { ...instruction, weight: 1, clipRange: 5 }, dp);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(secret)).not.toEqual(Array.from(a));
    expect(Array.from(a)).not.toEqual(Array.from(quiet));
  });
});

describe('distributed noise: each site’s share', () => {
  test.each([3, 7, 20])('is N(0, (z·S)²/t): t = %i shares add up to the N(0, (z·S)²) the coordinator would add to the sum', (t) => {
    const n = 40_000;
    const dp = { noiseMultiplier: 1.3, clipNorm: 0.5 };
    const sum = new Float64Array(n);
    for (let site = 0; site < t; site++) {
      const share = addNoiseShare(new Float32Array(n), dp, t, DpRandom.seeded(11, site));
      expect(rms(share)).toBeGreaterThan((0.97 * (1.3 * 0.5)) / Math.sqrt(t));
      expect(rms(share)).toBeLessThan((1.03 * (1.3 * 0.5)) / Math.sqrt(t));
      share.forEach((v, i) => (sum[i]! += v));
    }
    expect(rms(sum)).toBeGreaterThan(0.97 * 0.65);
    expect(rms(sum)).toBeLessThan(1.03 * 0.65);
  });
});
