import { mkdtemp, readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, loadBuiltinDataset, RdpAccountant, subset, type ImageDataset } from '@ftl/shared';
import { expectFtlError, thrownBy } from '@ftl/shared/testing';
import { beforeAll, describe, expect, test } from 'vitest';
import { ledgerPath, PrivacyLedger } from './privacy-ledger.js';

let data: ImageDataset;
let other: ImageDataset;
beforeAll(() => {
  const mnist = loadBuiltinDataset('mnist');
  data = subset(
    mnist,
    Array.from({ length: 40 }, (_, i) => i * 31),
  );
  other = subset(
    mnist,
    Array.from({ length: 40 }, (_, i) => i * 31 + 1),
  );
});

const round = { noiseMultiplier: 1.1, sampleRate: 0.25, steps: 12 };

describe('the privacy ledger', () => {
  test('starts at ε 0, adds each training and reads back on the same data with the same ε', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-ledger-'));
    const ledger = PrivacyLedger.open(dir, data);
    expect(ledger.spent(1e-5)).toEqual({ epsilon: 0, delta: 1e-5 });
    await ledger.record(round);
    await ledger.record(round);
    const expected = new RdpAccountant().step(round).step(round).epsilon(1e-5).epsilon;
    expect(ledger.spent(1e-5, 8)).toEqual({ epsilon: expected, delta: 1e-5, budget: 8 });
    const again = PrivacyLedger.open(dir, data);
    expect(again.spent(1e-5).epsilon).toBe(expected);
    expect(again.entries).toEqual([{ ...round, steps: 24 }]);
    // Other data is another ledger; nothing is left beside the saved one.
    expect(PrivacyLedger.open(dir, other).spent(1e-5).epsilon).toBe(0);
    expect(await readdir(join(dir, 'privacy'))).toEqual([ledgerPath(dir, data).split('/').at(-1)]);
  });

  test('with a budget, refuses the round that would pass it and says by how much; without one, trains', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-ledger-'));
    const ledger = PrivacyLedger.open(dir, data);
    const one = new RdpAccountant().step(round).epsilon(1e-5).epsilon;
    const two = new RdpAccountant().step(round).step(round).epsilon(1e-5).epsilon;
    const budget = (one + two) / 2;
    expect(ledger.decide({ budget, delta: 1e-5, next: round })).toEqual({ train: true });
    await ledger.record(round);
    const refusal = ledger.decide({ budget, delta: 1e-5, next: round });
    expect(refusal).toEqual({
      train: false,
      privacy: { epsilon: one, delta: 1e-5, budget },
      message: `privacy budget: ε would reach ${two.toFixed(2)} > budget ${budget} at δ 1e-5 (spent so far: ε ${one.toFixed(2)})`,
    });
    expect(ledger.decide({ budget: undefined, delta: 1e-5, next: round })).toEqual({ train: true });
    const plain = ledger.decide({ budget, delta: undefined, next: undefined });
    expect(plain).toMatchObject({ train: false, message: expect.stringMatching(/^privacy budget: this round would train without record-level DP/) });
  });

  test.each([
    ['not JSON', '{"format": "ftl-rdp-accountant", '],
    ['another JSON file', '{"hello": 1}'],
    [
      'an entry out of range',
      JSON.stringify({ format: 'ftl-rdp-accountant', version: 1, orders: [2, 4], ledger: [{ noiseMultiplier: 1, sampleRate: 2, steps: 1 }] }),
    ],
  ])('a damaged ledger (%s) is a one-line error naming the file, not a fresh start', async (_, text) => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-ledger-'));
    const path = ledgerPath(dir, data);
    await mkdir(join(dir, 'privacy'), { recursive: true });
    await writeFile(path, text);
    expectFtlError(() => PrivacyLedger.open(dir, data), ErrorCode.InvalidConfig, /^the privacy ledger .* is damaged \(privacy ledger/);
    const message = (thrownBy(() => PrivacyLedger.open(dir, data)) as Error).message;
    expect(message).toContain(path);
    expect(message).not.toContain('\n');
    expect(await readFile(path, 'utf8')).toBe(text);
  });
});
