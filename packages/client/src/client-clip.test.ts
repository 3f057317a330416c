import { decodeWeights, encodeWeights, l2Norm, updateDelta, type Weights } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { clipForClientDp } from './client-clip.js';

const specs = [
  { name: 'head/kernel', shape: [3, 2], dtype: 'float32' as const },
  { name: 'head/bias', shape: [2], dtype: 'float32' as const },
];
const global: Weights = { specs, values: Float32Array.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.01, -0.01]) };
const trainedBy = (step: number): Weights => ({ specs, values: global.values.map((v, i) => v + step * (i % 2 === 0 ? 1 : -1)) });

describe('a site’s update under client-level DP', () => {
  test('travels as weights: global + the change clipped to S over every tensor together, bytes and all', () => {
    const trained = trainedBy(1); // change of norm √8 ≈ 2.83
    const { weights, clientPrivacy, norm } = clipForClientDp(trained, global, { clipNorm: 1, noise: 'central', noiseMultiplier: 1 });
    expect(norm).toBeCloseTo(Math.sqrt(8), 6);
    expect(clientPrivacy).toBeUndefined(); // not asked for
    const sent = decodeWeights(encodeWeights(weights));
    expect(sent.specs).toEqual(specs);
    const change = updateDelta(sent.values, global.values);
    expect(l2Norm(change)).toBeCloseTo(1, 5);
    expect(l2Norm(change)).toBeLessThanOrEqual(1 + 1e-6);
    change.forEach((d, i) => expect(Math.sign(d)).toBe(i % 2 === 0 ? 1 : -1));
  });

  test('reports b = [‖Δ‖ ≤ S] when the round asks, and sends a change within S as it is', () => {
    const small = clipForClientDp(trainedBy(0.01), global, { clipNorm: 1, noise: 'central', noiseMultiplier: 1, reportUnclipped: true });
    expect(small.clientPrivacy).toEqual({ unclipped: true });
    expect(small.weights.values).toEqual(trainedBy(0.01).values);
    const large = clipForClientDp(trainedBy(1), global, { clipNorm: 1, noise: 'central', noiseMultiplier: 1, reportUnclipped: true });
    expect(large.clientPrivacy).toEqual({ unclipped: false });
  });

  test('with local noise adds the site’s own noise, the same for the same seed and different without one', () => {
    const settings = { clipNorm: 1, noise: 'local' as const, noiseMultiplier: 3 };
    const a = clipForClientDp(trainedBy(1), global, settings, 7).weights.values;
    const b = clipForClientDp(trainedBy(1), global, settings, 7).weights.values;
    const secret = clipForClientDp(trainedBy(1), global, settings).weights.values;
    expect(a).toEqual(b);
    expect(secret).not.toEqual(a);
    // Noise of std z·S = 3 on 8 values: the change is far past S.
    expect(l2Norm(updateDelta(a, global.values))).toBeGreaterThan(2);
  });

  test('refuses weights that are not the global model’s tensors', () => {
    const other = { specs: [{ name: 'head/kernel', shape: [4, 2], dtype: 'float32' as const }], values: new Float32Array(8) };
    expect(() => clipForClientDp(other, global, { clipNorm: 1, noise: 'central', noiseMultiplier: 1 })).toThrow();
  });
});
