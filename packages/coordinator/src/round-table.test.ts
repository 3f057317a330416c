import { describe, expect, test } from 'vitest';
import { formatRoundRow, roundTableHeader, type RoundRecord } from './round-table.js';

const row: RoundRecord = {
  round: 2,
  status: 'aggregated',
  selected: 5,
  accepted: 4,
  rejected: 0,
  failed: 1,
  trainLoss: 0.25,
  valLoss: 0.3,
  valAccuracy: 0.9123,
  evalClients: 5,
  bytesIn: 2_080_000,
  bytesOut: 4_160_000,
  seconds: 4.5,
  modelVersion: 2,
};

describe('the round table', () => {
  test('a row shows accepted/selected, and the trust policy’s exclusions and a kept model when there are any', () => {
    expect(formatRoundRow(row, 5)).toBe('  2/5 |            4/5 |     0.2500 |   0.3000 |  91.23% |  2.08 |   4.16 |     4.5');
    expect(formatRoundRow({ ...row, excluded: 1 }, 5)).toContain(' 4/5 1 excl |');
    expect(formatRoundRow({ ...row, excluded: 2, status: 'kept' }, 5)).toContain(' 4/5 2 excl (kept) |');
    expect(formatRoundRow({ ...row, excluded: 0 }, 5)).toContain('|            4/5 |');
  });

  test('runs with record-level DP show the largest ε a site reported, under its own header', () => {
    expect(roundTableHeader({ privacy: true })).toBe(`${roundTableHeader()} |  max ε`);
    expect(formatRoundRow({ ...row, epsilon: 2.3456 }, 5)).toBe(`${formatRoundRow(row, 5)} |   2.35`);
    expect(formatRoundRow(row, 5, { privacy: true })).toBe(`${formatRoundRow(row, 5)} |      -`);
  });
});
