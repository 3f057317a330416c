import { thrownBy } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';
import { type CoordinatorConfig, parseCoordinatorArgs } from './config.js';
import { parseRunConfig } from './run-config.js';

// What a run config may ask of secure aggregation, and what it is refused, one line per problem naming the
// field and the fix: the coordinator sees only the sum of the masked updates.

const messageOf = (fn: () => unknown): string => (thrownBy(fn) as Error).message;

/** Secure aggregation on, with the per-update screens off as it requires. */
const secure = { secureAggregation: { enabled: true }, trust: { normBound: 0, maxAbsValue: 0 } };

describe('the secureAggregation block of the run config', () => {
  test('is off by default; on, it takes R = 1, stochastic rounding, and t and the neighbours from the round', () => {
    expect(parseRunConfig({}).secureAggregation).toEqual({ enabled: false, clipRange: 1, rounding: 'stochastic' });
    expect(parseRunConfig(secure).secureAggregation).toEqual({ enabled: true, clipRange: 1, rounding: 'stochastic' });
    const sa = parseRunConfig({ ...secure, secureAggregation: { enabled: true, clipRange: 0.25, threshold: 5, neighbours: 6, rounding: 'nearest' } });
    expect(sa.secureAggregation).toEqual({ enabled: true, clipRange: 0.25, threshold: 5, neighbours: 6, rounding: 'nearest' });
  });

  test('goes with FedAvg and the strategies that step on a mean, with record-level DP and with client-level DP at a fixed clipNorm', () => {
    for (const name of ['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad']) {
      expect(parseRunConfig({ ...secure, strategy: { name } }).strategy.name).toBe(name);
    }
    expect(parseRunConfig({ ...secure, privacy: { mode: 'record', noiseMultiplier: 1.1, clipNorm: 1 } }).privacy.mode).toBe('record');
    expect(parseRunConfig({ ...secure, privacy: { mode: 'client', noiseMultiplier: 1, clipNorm: 0.5 } }).privacy.mode).toBe('client');
  });

  test.each(['krum', 'multikrum', 'fedmedian', 'fedtrimmedavg'])('refuses %s, which needs every update, in one line naming the fix', (name) => {
    expect(messageOf(() => parseRunConfig({ ...secure, strategy: { name } }))).toBe(
      `run config: strategy.name: ${name} needs every site's update, but with secure aggregation the coordinator sees only their sum; use fedavg, fedprox, fedavgm, fedadam, fedyogi or fedadagrad, or set secureAggregation.enabled to false`,
    );
  });

  test('refuses normbounded, which clips each update', () => {
    expect(messageOf(() => parseRunConfig({ ...secure, strategy: { name: 'normbounded' } }))).toMatch(
      /^run config: strategy\.name: normbounded clips each site's update, which secure aggregation hides; each site clips every value of its change to ±secureAggregation\.clipRange instead/,
    );
  });

  test('turns the trust policy’s per-update screens off by default, and refuses them when the config sets them, saying what replaces them', () => {
    expect(parseRunConfig({ secureAggregation: { enabled: true } }).trust).toMatchObject({ normBound: 0, maxAbsValue: 0 });
    expect(parseRunConfig({ secureAggregation: { enabled: true }, trust: { weightCap: 3 } }).trust).toMatchObject({
      normBound: 0,
      maxAbsValue: 0,
      weightCap: 3,
    });
    expect(parseCoordinatorArgs(['--secure-aggregation', 'on'])).toMatchObject({ trust: { normBound: 0, maxAbsValue: 0 } });
    // Without secure aggregation the screens keep their defaults.
    expect(parseRunConfig({}).trust.normBound).toBeGreaterThan(0);
    const message = messageOf(() => parseRunConfig({ secureAggregation: { enabled: true }, trust: { normBound: 4, maxAbsValue: 1e6 } }));
    expect(message).toContain(
      'trust.normBound: excludes an update by its distance from the global model, which a masked update does not show; with secure aggregation each site clips every value of its change to ±secureAggregation.clipRange instead, so set trust.normBound to 0',
    );
    expect(message).toContain('trust.maxAbsValue: excludes an update holding a value beyond it, which a masked update does not show;');
    // The weight cap works on the sample counts the sites declared, so it stays.
    expect(parseRunConfig({ ...secure, trust: { normBound: 0, maxAbsValue: 0, weightCap: 2 } }).trust.weightCap).toBe(2);
  });

  test.each([
    [
      { headInit: 'class-means', hidden: [] },
      /^run config: headInit: class-means has each site send its exact per-class feature sums in the clear before round 1, outside secure aggregation; use headInit random/,
    ],
    [
      { normalization: 'standard' },
      /^run config: normalization: standard has each site send the exact statistics of its training inputs in the clear/,
    ],
    [
      {
        privacy: {
          mode: 'client',
          noiseMultiplier: 1,
          clipNorm: 0.5,
          adaptiveClipping: { targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 2 },
        },
      },
      /^run config: privacy\.adaptiveClipping: needs each site's clipped-or-not bit, which would travel outside the masked sum/,
    ],
    [
      { secureAggregation: { enabled: true, neighbours: 4, threshold: 2 } },
      /^run config: secureAggregation\.threshold: must be in \[3, 5\] with 4 neighbours/,
    ],
  ])('refuses what it cannot honour: %o', (over, message) => {
    expect(messageOf(() => parseRunConfig({ ...secure, ...over }))).toMatch(message);
  });

  test('says nothing of these settings while it is off', () => {
    expect(parseRunConfig({ strategy: { name: 'krum' }, normalization: 'standard' }).strategy.name).toBe('krum');
  });

  test('has a command-line flag: on|off then key=value, refused in the file’s words', () => {
    const config = parseCoordinatorArgs([
      '--secure-aggregation',
      'on,clipRange=0.5,neighbours=4',
      '--trust',
      'normBound=0,maxAbsValue=0',
    ]) as CoordinatorConfig;
    expect(config.secureAggregation).toEqual({ enabled: true, clipRange: 0.5, neighbours: 4, rounding: 'stochastic' });
    expect(
      messageOf(() => parseCoordinatorArgs(['--secure-aggregation', 'on', '--strategy', 'krum', '--trust', 'normBound=0,maxAbsValue=0'])),
    ).toMatch(/--strategy \(strategy\.name\): krum needs every site's update/);
    expect(messageOf(() => parseCoordinatorArgs(['--secure-aggregation', 'maybe']))).toBe('--secure-aggregation starts with on or off (got "maybe")');
  });
});
