import { DEFAULT_RDP_ORDERS, GaussianNoise, RdpAccountant } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { checkClientClip, ClientDp, clientDpSettings, clientPrivacyHistory, type ClientDpSettings, type ClientLevelPrivacy } from './client-dp.js';
import { parseRunConfig } from './run-config.js';

const settings = (over: Partial<ClientDpSettings> = {}): ClientDpSettings => ({
  noiseMultiplier: 1,
  clipNorm: 0.5,
  noise: 'central',
  delta: 1e-5,
  ...over,
});
const global = new Float32Array(4);
const update = (values: number[], unclipped?: boolean) => ({ values: Float32Array.from(values), loss: 1, unclipped });

/** Plays `rounds` rounds of `selected` among `ready` sites, each with one small update. */
function play(dp: ClientDp, rounds: number, selected: number, ready: number): ClientLevelPrivacy[] {
  return Array.from({ length: rounds }, () => dp.release(global, [update([0.1, 0, 0, 0], true)], selected, ready).privacy);
}

describe('client-level DP of a run', () => {
  test('resolves the run config: central noise unless told, no settings without client mode', () => {
    expect(clientDpSettings(parseRunConfig({ privacy: { mode: 'client', noiseMultiplier: 1, clipNorm: 0.5 } }))).toEqual({
      noiseMultiplier: 1,
      clipNorm: 0.5,
      noise: 'central',
      adaptive: undefined,
      delta: 1e-5,
      targetEpsilon: undefined,
    });
    expect(clientDpSettings(parseRunConfig({ privacy: { mode: 'record', noiseMultiplier: 1, clipNorm: 0.5 } }))).toBeUndefined();
  });

  // Opacus's accountants_test: σ 1.5, q 0.04, 2250 steps, δ 1e-5 → ε 7.32911117143 over its orders 1.1 … 10.9, 12 … 63
  // (TensorFlow Privacy's compute_dp_sgd_privacy computes the same). Here: 4 sites of 100 per round, 2250 rounds,
  // over the default orders, whose coarser grid gives a hair more.
  test('charges each round as the sampled Gaussian with q = selected / ready: the published ε for the same q, z and steps', () => {
    const dp = new ClientDp(settings({ noiseMultiplier: 1.5 }), GaussianNoise.seeded(1));
    const rounds = play(dp, 2250, 4, 100);
    expect(rounds.at(-1)!.sampleRate).toBe(0.04);
    expect(rounds.at(-1)!.epsilon).toBeGreaterThanOrEqual(7.32911117143);
    expect(rounds.at(-1)!.epsilon / 7.32911117143 - 1).toBeLessThan(2e-4);
    // ε grows every round.
    for (let r = 1; r < 50; r++) expect(rounds[r]!.epsilon).toBeGreaterThan(rounds[r - 1]!.epsilon);
  });

  test('with every site in every round (q = 1), ε is the Gaussian mechanism’s: min over α of Tα/2z² + log((α−1)/α) − (log δ + log α)/(α−1)', () => {
    const z = 2;
    const T = 10;
    const dp = new ClientDp(settings({ noiseMultiplier: z }), GaussianNoise.seeded(1));
    const last = play(dp, T, 20, 20).at(-1)!;
    const byHand = Math.min(
      ...DEFAULT_RDP_ORDERS.map((a) => (T * a) / (2 * z * z) + Math.log((a - 1) / a) - (Math.log(1e-5) + Math.log(a)) / (a - 1)),
    );
    expect(last.epsilon).toBeCloseTo(byHand, 10);
  });

  test('stops before the round that would pass the target ε, saying by how much, and lets the rounds before it play', () => {
    const dp = new ClientDp(settings({ noiseMultiplier: 1, targetEpsilon: 2.8 }), GaussianNoise.seeded(1));
    const accountant = new RdpAccountant();
    let round = 1;
    while (dp.stopBefore(round, 10, 100) === undefined) {
      play(dp, 1, 10, 100);
      accountant.step({ noiseMultiplier: 1, sampleRate: 0.1, steps: 1 });
      round++;
    }
    expect(round).toBeGreaterThan(2);
    expect(dp.epsilon()).toBeLessThanOrEqual(2.8);
    expect(dp.epsilon()).toBe(accountant.epsilon(1e-5).epsilon);
    expect(accountant.step({ noiseMultiplier: 1, sampleRate: 0.1, steps: 1 }).epsilon(1e-5).epsilon).toBeGreaterThan(2.8);
    expect(dp.stopBefore(round, 10, 100)).toMatch(
      new RegExp(
        `^privacy budget reached: round ${round} \\(10 of 100 sites, q = 0.1, z = 1\\) would take the run's client-level ε from [\\d.]+ to [\\d.]+, past privacy.targetEpsilon 2.8 at δ 0.00001; the run ends with the global model of round ${round - 1}$`,
      ),
    );
    // A run without a target never stops for it.
    expect(new ClientDp(settings()).stopBefore(1, 100, 100)).toBeUndefined();
  });

  test('adaptive clipping moves S for the next instruction; a resumed run carries its ε and S on from its recorded rounds', () => {
    const adaptive = { targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 5 };
    const dp = new ClientDp(settings({ adaptive }), GaussianNoise.seeded(4));
    expect(dp.instruction()).toEqual({ clipNorm: 0.5, noise: 'central', noiseMultiplier: 1, reportUnclipped: true });
    const { privacy } = dp.release(global, [update([0.1, 0, 0, 0], true), update([9, 0, 0, 0], false)], 2, 10);
    expect(privacy.clipNorm).toBe(0.5);
    expect(privacy.nextClipNorm).toBe(0.5 * Math.exp(-0.2 * (privacy.unclippedFraction! - 0.5)));
    expect(privacy.deltaNoiseMultiplier).toBeCloseTo((1 - 1 / 100) ** -0.5, 12);
    expect(dp.instruction().clipNorm).toBe(privacy.nextClipNorm);
    play(dp, 3, 2, 10);

    const events = [{ type: 'round-privacy', data: { round: 1, sites: [], refused: [], client: privacy } }].concat(
      play(new ClientDp(settings({ adaptive }), GaussianNoise.seeded(5)), 0, 2, 10).map((c, i) => ({
        type: 'round-privacy',
        data: { round: i + 2, sites: [], refused: [], client: c },
      })),
    );
    const resumed = new ClientDp(
      settings({ adaptive }),
      GaussianNoise.seeded(1),
      clientPrivacyHistory(events.map((e, id) => ({ id, runId: 'r', at: '', ...e }))),
    );
    expect(resumed.instruction().clipNorm).toBe(privacy.nextClipNorm);
    expect(resumed.epsilon()).toBe(privacy.epsilon);
  });

  test('the mean of the released update divides by the selected sites, and local noise reports the unamplified ε against the coordinator', () => {
    const dp = new ClientDp(settings({ noise: 'local', noiseMultiplier: 2 }), GaussianNoise.seeded(1));
    const { mean, privacy } = dp.release(global, [update([0.4, 0, 0, 0]), update([0.2, 0, 0, 0])], 4, 8);
    expect(mean.values[0]).toBeCloseTo(0.15, 6);
    expect(privacy).toMatchObject({ noise: 'local', selected: 4, ready: 8, updates: 2, sampleRate: 0.5 });
    const unamplified = new RdpAccountant().step({ noiseMultiplier: 2, sampleRate: 1, steps: 1 }).epsilon(1e-5).epsilon;
    expect(privacy.localEpsilon).toBe(unamplified);
    expect(privacy.localEpsilon).toBeGreaterThan(privacy.epsilon);
  });

  test('an update of an adaptive run must say whether its change was within S', () => {
    const config = {
      runId: 'r',
      ...parseRunConfig({
        privacy: {
          mode: 'client',
          noiseMultiplier: 1,
          clipNorm: 1,
          adaptiveClipping: { targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 5 },
        },
      }),
    };
    expect(() => checkClientClip(config, {})).toThrow(/fit-result\.clientPrivacy is missing: run r clips adaptively/);
    expect(() => checkClientClip(config, { clientPrivacy: { unclipped: false } })).not.toThrow();
    expect(() =>
      checkClientClip({ runId: 'r', ...parseRunConfig({ privacy: { mode: 'client', noiseMultiplier: 1, clipNorm: 1 } }) }, {}),
    ).not.toThrow();
  });
});
