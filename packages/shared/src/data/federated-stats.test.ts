import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { channelStats, checkChannelStats, combineStats, normalizeImages, statsInconsistency, type ChannelStats } from './federated-stats.js';

describe('federated normalisation statistics', () => {
  test("combining the clients' statistics gives the pooled mean and std, whatever the split", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc
            .array(fc.float({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 40 })
            .map((a) => a.slice(0, a.length - (a.length % 2)))
            .filter((a) => a.length > 0),
          { minLength: 1, maxLength: 5 },
        ),
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
      ),
    );
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
    expect(() => combineStats([good, channelStats({ images: Float32Array.from([0.1]), channels: 1 })])).toThrow(
      /channel statistics disagree: 3 channels/,
    );
    expect(() => combineStats([{ ...good, sum: [NaN, 0, 0] }])).toThrow(/must be finite/);
    expect(() => normalizeImages(new Float32Array(4), 2, combineStats([good]))).toThrow(/normalisation has 3 channels but the images have 2/);
  });

  test('trim 0 is the exact pooled result; the default is trim 0', () => {
    const parts = [
      [0.1, 0.5, 0.2, 0.4],
      [0.9, 0.3],
    ].map((v) => channelStats({ images: Float32Array.from(v), channels: 2 }));
    expect(combineStats(parts, 'standard', { trim: 0 })).toEqual(combineStats(parts));
    expect(combineStats(parts, 'min-max', { trim: 0 })).toEqual(combineStats(parts, 'min-max'));
  });

  test('with trim k, the k sites with the most extreme means per channel are left out, so one poisoned site cannot move the shift', () => {
    // Four honest sites around 0.5 on channel 0; site 2 reports sums of 1e300 on channel 1 only.
    const honest = (m: number) => channelStats({ images: Float32Array.from([m - 0.1, 0.2, m + 0.1, 0.4]), channels: 2 });
    const parts: ChannelStats[] = [honest(0.5), honest(0.7), honest(0.5), honest(0.52)];
    parts[2] = { ...parts[2]!, sum: [parts[2]!.sum[0]!, 1e300], sumSquares: [parts[2]!.sumSquares[0]!, 1e300], max: [parts[2]!.max[0]!, 1e300] };
    expect(combineStats(parts).shift[1]).toBeGreaterThan(1e299);
    const trimmed = combineStats(parts, 'standard', { trim: 1 });
    expect(trimmed.shift[1]).toBeCloseTo(0.3, 6);
    // Channel 0 trims its own outlier, site 1 (mean 0.7), and keeps site 2's honest channel 0.
    const pooled = combineStats([parts[0]!, parts[2]!, parts[3]!]);
    expect(trimmed.shift[0]).toBeCloseTo(pooled.shift[0]!, 9);
    expect(combineStats(parts, 'min-max', { trim: 1 }).scale[1]).toBeCloseTo(0.2, 6);
  });

  test.each([[-1], [1.5], [3]])('refuses trim %d with 3 sites', (trim) => {
    const s = channelStats({ images: Float32Array.from([0.1, 0.2]), channels: 1 });
    expectFtlError(() => combineStats([s, s, s], 'standard', { trim }), ErrorCode.InvalidConfig, /^trim must be an integer in \[0, 2\] with 3 sites/);
  });

  test('statistics an honest site computes are consistent, whatever its values', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -1000, max: 1000, noNaN: true }), { minLength: 3, maxLength: 300 }), (v) => {
        const values = v.slice(0, v.length - (v.length % 3));
        expect(statsInconsistency(channelStats({ images: Float32Array.from(values), channels: 3 }))).toBeUndefined();
      }),
    );
  });

  const good = (): ChannelStats => ({ count: 4, sum: [2, 1], sumSquares: [1.5, 0.5], min: [0, 0], max: [1, 0.5] });
  test.each<[string, (s: ChannelStats) => void, RegExp]>([
    [
      'another number of values',
      (s) => {
        s.sum.push(0);
        s.sumSquares.push(0);
        s.min.push(0);
        s.max.push(0);
      },
      /^channel statistics have 3 values but this run expects 2; /,
    ],
    [
      'min above max',
      (s) => {
        s.min[1] = 0.6;
      },
      /inconsistent: channel 1 has min 0.6 > max 0.5/,
    ],
    [
      'a mean above max',
      (s) => {
        s.sum[0] = 40;
        s.sumSquares[0] = 400;
      },
      /inconsistent: channel 0 has mean 10 outside \[min 0, max 1\]/,
    ],
    [
      'a negative variance',
      (s) => {
        s.sumSquares[0] = 0.9;
      },
      /channel 0 has sumSquares 0.9 < sum²\/count 1 \(a negative variance\)/,
    ],
    [
      'more energy than the range allows',
      (s) => {
        s.sumSquares[0] = 4.1;
      },
      /channel 0 has sumSquares 4.1 > count·max\(min², max²\) 4/,
    ],
    [
      'sums of 1e300',
      (s) => {
        s.sum[0] = 1e300;
        s.sumSquares[0] = 1e300;
        s.max[0] = 1e300;
      },
      /channel 0 has sumSquares 1e\+300 < sum²\/count Infinity/,
    ],
    [
      'a zero count',
      (s) => {
        s.count = 0;
      },
      /count must be a positive integer \(got 0\)/,
    ],
    [
      'a fractional count',
      (s) => {
        s.count = 2.5;
      },
      /count must be a positive integer \(got 2.5\)/,
    ],
    [
      'an infinite maximum',
      (s) => {
        s.max[0] = Infinity;
      },
      /channel 0 has a value that is not finite/,
    ],
    [
      'values outside the declared range',
      (s) => {
        s.min[1] = -0.5;
      },
      /of channel 1 span \[-0.5, 0.5\], outside the data's range \[0, 1\]/,
    ],
  ])('checkChannelStats refuses %s in one line', (_, mutate, message) => {
    const s = good();
    expect(() => checkChannelStats(s, { values: 2, range: [0, 1] })).not.toThrow();
    mutate(s);
    expectFtlError(() => checkChannelStats(s, { values: 2, range: [0, 1] }), ErrorCode.Dataset, message);
  });

  test('without a declared range, any finite consistent span is accepted', () => {
    expect(() => checkChannelStats({ count: 2, sum: [-300], sumSquares: [50000], min: [-200], max: [-100] }, { values: 1 })).not.toThrow();
  });
});
