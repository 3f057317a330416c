import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { channelStats, combineStats, normalizeImages } from './federated-stats.js';

describe('federated normalisation statistics', () => {
  test('combining the clients\' statistics gives the pooled mean and std, whatever the split', () => {
    fc.assert(fc.property(
      fc.array(fc.array(fc.float({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 40 }).map((a) => a.slice(0, a.length - (a.length % 2))).filter((a) => a.length > 0), { minLength: 1, maxLength: 5 }),
      (clients) => {
        // 2 channels, 1×1 images: consecutive values alternate channels.
        const parts = clients.map((values) => channelStats({ images: Float32Array.from(values), channels: 2 }));
        const pooled = Float32Array.from(clients.flat());
        const norm = combineStats(parts);
        for (let k = 0; k < 2; k++) {
          const vals = Array.from(pooled).filter((_, i) => i % 2 === k);
          const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
          const std = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length);
          expect(norm.shift[k]).toBeCloseTo(mean, 5);
          expect(norm.scale[k]).toBeCloseTo(std > 1e-12 ? std : 1, 4);
        }
      },
    ));
  });

  test('min-max over clients, and a flat channel gets scale 1 instead of a division by zero', () => {
    const a = channelStats({ images: Float32Array.from([0.2, 5, 0.4, 5]), channels: 2 });
    const b = channelStats({ images: Float32Array.from([0.1, 5]), channels: 2 });
    expect(combineStats([a, b], 'min-max')).toEqual({ kind: 'min-max', shift: [expect.closeTo(0.1, 6), 5], scale: [expect.closeTo(0.3, 6), 1] });
    const norm = combineStats([a, b]);
    const out = normalizeImages(Float32Array.from([0.2, 5]), 2, norm);
    expect(out[1]).toBe(0);
  });

  test('bad statistics are refused with a clear message', () => {
    const good = channelStats({ images: Float32Array.from([0.1, 0.2, 0.3]), channels: 3 });
    expect(() => combineStats([])).toThrow(/no client statistics/);
    expect(() => combineStats([good, channelStats({ images: Float32Array.from([0.1]), channels: 1 })])).toThrow(/channel statistics disagree: 3 channels/);
    expect(() => combineStats([{ ...good, sum: [NaN, 0, 0] }])).toThrow(/must be finite/);
    expect(() => normalizeImages(new Float32Array(4), 2, combineStats([good]))).toThrow(/normalisation has 3 channels but the images have 2/);
  });
});
