import { describe, expect, test } from 'vitest';
import { formatPercentInterval, meanInterval } from './confidence.js';

describe('confidence intervals over seeds', () => {
  test('mean ± t(0.975, n−1)·s/√n, with the t quantile for the number of seeds', () => {
    const m = meanInterval([0.91, 0.93, 0.92]);
    expect(m.mean).toBeCloseTo(0.92, 12);
    expect(m.half).toBeCloseTo((4.303 * 0.01) / Math.sqrt(3), 12); // s = 0.01, t(0.975, 2) = 4.303
    expect(meanInterval([1, 2, 3, 4, 5]).half).toBeCloseTo((2.776 * Math.sqrt(2.5)) / Math.sqrt(5), 12);
    expect(formatPercentInterval(m)).toBe('92.00% ± 2.48');
  });

  test('one value has no interval, and none has no mean', () => {
    expect(formatPercentInterval(meanInterval([0.5]))).toBe('50.00%');
    expect(formatPercentInterval(meanInterval([]))).toBe('–');
  });
});
