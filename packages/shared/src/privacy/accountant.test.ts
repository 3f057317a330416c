import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import * as fl from '../fl.js';
import { expectFtlError, ftlErrorMessage } from '../../test-support/expect-ftl-error.js';
import { RDP_ACCOUNTANT_FORMAT, RdpAccountant } from './accountant.js';
import type { SampledGaussian } from './params.js';
import { composeRdp, DEFAULT_RDP_ORDERS, epsilonFromRdp } from './rdp.js';

/** Opacus's default alphas: 1.1 … 10.9 and 12 … 63. */
const OPACUS_ORDERS = [...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10), ...Array.from({ length: 52 }, (_, k) => 12 + k)];

const round = (noiseMultiplier: number, sampleRate: number, steps: number): SampledGaussian => ({ noiseMultiplier, sampleRate, steps });

const mechanism = fc.record({
  noiseMultiplier: fc.double({ min: 0.3, max: 20, noNaN: true }),
  sampleRate: fc.double({ min: 0, max: 1, noNaN: true }),
  steps: fc.integer({ min: 0, max: 10_000 }),
});

describe('RdpAccountant', () => {
  test('reports the ε of its ledger as the composed RDP converts it, by the conversion asked for', () => {
    const rounds = [round(1.1, 0.01, 200), round(0.9, 0.05, 30), round(1.1, 0.01, 100)];
    const accountant = new RdpAccountant();
    for (const r of rounds) accountant.step(r);
    const rdp = composeRdp(rounds);
    accountant.rdp().forEach((r, i) => expect(r).toBeCloseTo(rdp[i]!, 12));
    expect(accountant.epsilon(1e-5).epsilon).toBeCloseTo(epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, 1e-5).epsilon, 12);
    expect(accountant.epsilon(1e-5, { conversion: 'classic' })).toMatchObject({ conversion: 'classic', delta: 1e-5 });
    expect(accountant.epsilon(1e-5, { conversion: 'classic' }).epsilon).toBeCloseTo(
      epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, 1e-5, 'classic').epsilon,
      12,
    );
  });

  test('merges steps of the same (q, σ) into one ledger entry, and skips zero steps', () => {
    const accountant = new RdpAccountant()
      .step(round(1, 0.1, 5))
      .step(round(2, 0.1, 3))
      .step(round(1, 0.1, 7))
      .step(round(3, 0.5, 0));
    expect(accountant.ledger).toEqual([round(1, 0.1, 12), round(2, 0.1, 3)]);
  });

  test('Opacus accountants_test: 2250 single steps at σ 1.5, q 0.04 spend ε 7.32911117143 at δ 1e-5', () => {
    const accountant = new RdpAccountant({ orders: OPACUS_ORDERS });
    for (let i = 0; i < 2250; i++) accountant.step(round(1.5, 0.04, 1));
    expect(accountant.ledger).toEqual([round(1.5, 0.04, 2250)]);
    expect(accountant.epsilon(1e-5).epsilon).toBeCloseTo(7.32911117143, 9);
  });

  test('an empty accountant has spent nothing', () => {
    expect(new RdpAccountant().epsilon(1e-5).epsilon).toBe(0);
  });

  test('wouldExceed says whether one more round takes ε past the budget, and changes nothing', () => {
    const accountant = new RdpAccountant().step(round(1.1, 0.01, 1000));
    const before = accountant.epsilon(1e-5).epsilon;
    const next = round(1.1, 0.01, 100);
    const after = accountant.epsilonAfter(next, 1e-5).epsilon;
    expect(after).toBeGreaterThan(before);
    expect(accountant.wouldExceed(after * 1.001, 1e-5, next)).toBe(false);
    expect(accountant.wouldExceed(after * 0.999, 1e-5, next)).toBe(true);
    expect(accountant.wouldExceed(before * 1.001, 1e-5, next)).toBe(true);
    expect(accountant.epsilon(1e-5).epsilon).toBe(before);
    expect(accountant.ledger).toEqual([round(1.1, 0.01, 1000)]);
    // What it predicted is what stepping gives.
    expect(accountant.step(next).epsilon(1e-5).epsilon).toBeCloseTo(after, 12);
  });

  test('wouldExceed follows the conversion: a budget between the two is exceeded only by the classic one', () => {
    const accountant = new RdpAccountant();
    const next = round(1.1, 0.01, 1000);
    const improved = accountant.epsilonAfter(next, 1e-5).epsilon;
    const classic = accountant.epsilonAfter(next, 1e-5, { conversion: 'classic' }).epsilon;
    const budget = (improved + classic) / 2;
    expect(accountant.wouldExceed(budget, 1e-5, next)).toBe(false);
    expect(accountant.wouldExceed(budget, 1e-5, next, { conversion: 'classic' })).toBe(true);
  });

  test('serialize then deserialize gives the same ledger, orders and ε, through JSON text too', () => {
    fc.assert(
      fc.property(fc.array(mechanism, { maxLength: 6 }), fc.constantFrom(1e-5, 1e-7), (rounds, delta) => {
        const accountant = new RdpAccountant({ orders: [1.5, 2, 3.5, 8, 32] });
        for (const r of rounds) accountant.step(r);
        const saved = accountant.serialize();
        for (const back of [RdpAccountant.deserialize(saved), RdpAccountant.deserialize(JSON.stringify(saved))]) {
          expect(back.orders).toEqual(accountant.orders);
          expect(back.ledger).toEqual(accountant.ledger);
          expect(back.epsilon(delta)).toEqual(accountant.epsilon(delta));
          expect(back.serialize()).toEqual(saved);
        }
      }),
      { numRuns: 40 },
    );
  });

  test('a resumed accountant goes on counting where the saved one stopped', () => {
    const accountant = new RdpAccountant().step(round(1, 0.02, 300));
    const resumed = RdpAccountant.deserialize(JSON.stringify(accountant.serialize())).step(round(1, 0.02, 200));
    expect(resumed.ledger).toEqual([round(1, 0.02, 500)]);
    expect(resumed.epsilon(1e-5)).toEqual(new RdpAccountant().step(round(1, 0.02, 500)).epsilon(1e-5));
  });

  test('the saved form is plain JSON naming its format and version', () => {
    expect(new RdpAccountant({ orders: [2, 4] }).step(round(1, 0.5, 2)).serialize()).toEqual({
      format: RDP_ACCOUNTANT_FORMAT,
      version: 1,
      orders: [2, 4],
      ledger: [{ noiseMultiplier: 1, sampleRate: 0.5, steps: 2 }],
    });
  });

  const valid = { format: RDP_ACCOUNTANT_FORMAT, version: 1, orders: [2, 4], ledger: [{ noiseMultiplier: 1, sampleRate: 0.5, steps: 2 }] };
  test.each([
    ['{"format": "ftl-rdp-accountant", ', /^privacy ledger is not JSON \(.+\); restore it from a backup or start a new one$/],
    ['', /^privacy ledger is not JSON/],
    [null, /^privacy ledger must be an object \(got null\)$/],
    [[], /^privacy ledger must be an object \(got an array of 0\)$/],
    [{ ...valid, format: 'something-else' }, /^privacy ledger\.format must be "ftl-rdp-accountant" \(got "something-else"\)$/],
    [{ ...valid, version: 2 }, /^privacy ledger\.version must be 1 \(got number 2\)$/],
    [{ ...valid, orders: [] }, /^privacy ledger\.orders must be a non-empty array of orders/],
    [{ ...valid, orders: [2, 1] }, /^privacy ledger\.orders\[1\] must be a number in \(1, 10000\] \(got number 1\)$/],
    [{ ...valid, ledger: 'none' }, /^privacy ledger\.ledger must be an array of at most 100000 items \(got "none"\)$/],
    [
      { ...valid, ledger: [{ noiseMultiplier: 0, sampleRate: 0.5, steps: 2 }] },
      /^privacy ledger\.ledger\[0\]\.noiseMultiplier must be a positive number \(got number 0\)$/,
    ],
    [
      { ...valid, ledger: [{ noiseMultiplier: 1, sampleRate: 0.5, steps: 2.5 }] },
      /^privacy ledger\.ledger\[0\]\.steps must be an integer ≥ 0 \(got number 2\.5\)$/,
    ],
    [
      { ...valid, ledger: [{ noiseMultiplier: 1, steps: 2 }] },
      /^privacy ledger\.ledger\[0\]\.sampleRate must be a number in \[0, 1\] \(got undefined\)$/,
    ],
  ])('a broken saved ledger %j is refused with one line', (saved, message) => {
    const text = ftlErrorMessage(() => RdpAccountant.deserialize(saved), ErrorCode.InvalidConfig);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  test.each([
    ['step', (a: RdpAccountant) => a.step(round(0, 0.1, 1)), /^step\.noiseMultiplier must be a positive number \(got number 0\)$/],
    ['step', (a: RdpAccountant) => a.step(round(1, 1.1, 1)), /^step\.sampleRate must be a number in \[0, 1\] \(got number 1\.1\)$/],
    ['step', (a: RdpAccountant) => a.step(round(1, 0.1, -2)), /^step\.steps must be an integer ≥ 0 \(got number -2\)$/],
    ['epsilon', (a: RdpAccountant) => a.epsilon(0), /^delta must be a number in \(0, 1\) \(got number 0\)$/],
    ['epsilon', (a: RdpAccountant) => a.epsilon(1e-5, { conversion: 'best' as 'classic' }), /^conversion must be "improved" or "classic"/],
    ['wouldExceed', (a: RdpAccountant) => a.wouldExceed(0, 1e-5, round(1, 0.1, 1)), /^budget must be a positive number \(got number 0\)$/],
    ['wouldExceed', (a: RdpAccountant) => a.wouldExceed(Number.NaN, 1e-5, round(1, 0.1, 1)), /^budget must be a positive number \(got number NaN\)$/],
    [
      'wouldExceed',
      (a: RdpAccountant) => a.wouldExceed(1, 1e-5, round(1, Number.NaN, 1)),
      /^next\.sampleRate must be a number in \[0, 1\] \(got number NaN\)$/,
    ],
    ['wouldExceed', (a: RdpAccountant) => a.wouldExceed(1, 2, round(1, 0.1, 1)), /^delta must be a number in \(0, 1\) \(got number 2\)$/],
  ])('%s refuses bad input with INVALID_CONFIG', (_, call, message) => {
    const accountant = new RdpAccountant().step(round(1, 0.1, 1));
    expectFtlError(() => call(accountant), ErrorCode.InvalidConfig, message);
    expect(accountant.ledger).toEqual([round(1, 0.1, 1)]);
  });

  test('refuses bad orders when built', () => {
    expectFtlError(() => new RdpAccountant({ orders: [0.5] }), ErrorCode.InvalidConfig, /^orders\[0\] must be a number in \(1, 10000\]/);
  });
});

test('the pure `fl` entry exports the accountant and its math', () => {
  expect(fl.RdpAccountant).toBe(RdpAccountant);
  expect(fl.epsilonFromRdp).toBe(epsilonFromRdp);
  expect(fl.noiseMultiplierFor({ epsilon: 3, delta: 1e-5, sampleRate: 0.01, steps: 1000 })).toBeGreaterThan(0);
});
