import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createRng } from '../random.js';
import { clipDelta, clipSiteUpdate, deltaNoiseMultiplier, DpFedAvgAggregator, l2Norm, nextClipNorm, updateDelta } from './client-dp.js';
import { GaussianNoise, type GaussianSource } from './gaussian-noise.js';

/** Randomness that adds nothing: isolates the mean and the clipping from the noise. */
const noNoise: GaussianSource = { gaussian: (out) => out.fill(0) };

const vector = (maxLength = 64) =>
  fc.array(fc.float({ min: -1e3, max: 1e3, noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength }).map((a) => Float32Array.from(a));

function std(values: Float32Array): number {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let s = 0;
  for (const v of values) s += (v - mean) ** 2;
  return Math.sqrt(s / (values.length - 1));
}

describe('clipping a site’s change', () => {
  test('leaves a change within S as it is, and says it was within', () => {
    fc.assert(
      fc.property(vector(), (delta) => {
        const S = l2Norm(delta) + 1;
        const clipped = clipDelta(delta, S);
        expect(clipped.unclipped).toBe(true);
        expect(clipped.delta).toEqual(delta);
        expect(clipped.delta).not.toBe(delta);
      }),
    );
  });

  test('scales a longer change to norm at most S, never past it, keeping its direction', () => {
    fc.assert(
      fc.property(vector(), fc.double({ min: 1e-3, max: 10, noNaN: true }), (delta, S) => {
        const norm = l2Norm(delta);
        fc.pre(norm > S);
        const clipped = clipDelta(delta, S);
        expect(clipped.unclipped).toBe(false);
        expect(clipped.norm).toBe(norm);
        expect(l2Norm(clipped.delta)).toBeLessThanOrEqual(S);
        expect(l2Norm(clipped.delta)).toBeGreaterThan(S * (1 - 1e-5));
        let dot = 0;
        for (let i = 0; i < delta.length; i++) dot += delta[i]! * clipped.delta[i]!;
        expect(dot / (norm * l2Norm(clipped.delta))).toBeGreaterThan(1 - 1e-5);
      }),
    );
  });

  test.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses S = %d', (S) => {
    expect(() => clipDelta(new Float32Array([1]), S)).toThrow(/clipNorm must be a finite number > 0/);
  });

  test('refuses a change with no finite norm', () => {
    expect(() => clipDelta(new Float32Array([3e38, 3e38]), 1)).not.toThrow(); // the norm is summed in double precision
    expect(() => clipDelta(new Float32Array([Number.NaN]), 1)).toThrow(/non-finite norm/);
  });

  test('a site sends global + the clipped change, and with local noise N(0, (z·S)²) on each value', () => {
    const global = Float32Array.from({ length: 20_000 }, (_, i) => Math.sin(i));
    const trained = global.map((g, i) => g + (i % 2 === 0 ? 0.1 : -0.1));
    const central = clipSiteUpdate(trained, global, { clipNorm: 2, noise: 'central', noiseMultiplier: 1 });
    expect(central.unclipped).toBe(false);
    expect(central.norm).toBeCloseTo(0.1 * Math.sqrt(20_000), 3);
    expect(l2Norm(updateDelta(central.values, global))).toBeCloseTo(2, 3);
    const local = clipSiteUpdate(trained, global, { clipNorm: 2, noise: 'local', noiseMultiplier: 0.5 }, GaussianNoise.seeded(7));
    const noise = updateDelta(local.values, central.values);
    expect(std(noise)).toBeGreaterThan(0.5 * 2 * 0.98);
    expect(std(noise)).toBeLessThan(0.5 * 2 * 1.02);
    expect(() => clipSiteUpdate(trained, global, { clipNorm: 2, noise: 'local', noiseMultiplier: 0.5 })).toThrow(/secret randomness/);
  });
});

describe('the coordinator’s noised mean', () => {
  test('is the sum of the clipped changes over the selected sites, not over those that answered', () => {
    const agg = new DpFedAvgAggregator(2, { clipNorm: 1, noiseMultiplier: 1, noise: 'central', selected: 4 });
    agg.add(Float32Array.from([0.3, 0.4])); // norm 0.5: kept
    agg.add(Float32Array.from([6, 8])); // norm 10: clipped to 1 here, whatever the site did
    const { meanDelta, count } = agg.finish(noNoise);
    expect(count).toBe(2);
    expect(meanDelta[0]).toBeCloseTo((0.3 + 0.6) / 4, 5);
    expect(meanDelta[1]).toBeCloseTo((0.4 + 0.8) / 4, 5);
  });

  test('with local noise sums the changes as they came (they carry their own noise) and adds none', () => {
    const agg = new DpFedAvgAggregator(2, { clipNorm: 1, noiseMultiplier: 1, noise: 'local', selected: 2 });
    agg.add(Float32Array.from([6, 8]));
    const result = agg.finish(GaussianNoise.seeded(1));
    expect(result.noiseStd).toBe(0);
    expect([...result.meanDelta]).toEqual([3, 4]);
  });

  // A large vector of changes that cancel: what is left on the mean is the noise alone.
  test.each([
    [1, 1, 10, undefined],
    [1.1, 0.5, 20, undefined],
    [0.8, 2, 10, 5],
  ])('has noise of standard deviation z·S/m on every value (z %d, S %d, m %d, σ_b %s)', (z, S, m, countNoise) => {
    const length = 200_000;
    const adaptive = countNoise === undefined ? undefined : { targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: countNoise };
    const agg = new DpFedAvgAggregator(length, { clipNorm: S, noiseMultiplier: z, noise: 'central', selected: m, adaptive });
    const rng = createRng(3);
    const up = Float32Array.from({ length }, () => rng.next() - 0.5);
    const down = up.map((v) => -v);
    agg.add(up);
    agg.add(down);
    const result = agg.finish(GaussianNoise.seeded(11));
    // With adaptive clipping the update's own noise is z_Δ > z, so that with the count's both are z.
    const zDelta = deltaNoiseMultiplier(z, countNoise);
    expect(result.noiseStd).toBeCloseTo((zDelta * S) / m, 12);
    const measured = std(result.meanDelta);
    expect(Math.abs(measured / ((zDelta * S) / m) - 1)).toBeLessThan(0.01);
  });

  test('refuses adaptive clipping with local noise, and no selected site', () => {
    const adaptive = { targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 5 };
    expect(() => new DpFedAvgAggregator(1, { clipNorm: 1, noiseMultiplier: 1, noise: 'local', selected: 2, adaptive })).toThrow(
      /needs central noise/,
    );
    expect(() => new DpFedAvgAggregator(1, { clipNorm: 1, noiseMultiplier: 1, noise: 'central', selected: 0 })).toThrow(/selected must be/);
  });
});

describe('adaptive clipping', () => {
  test('z_Δ = (z⁻² − (2σ_b)⁻²)^(−½): the two releases together have noise multiplier z', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.1, max: 20, noNaN: true }), fc.double({ min: 0.51, max: 100, noNaN: true }), (z, ratio) => {
        const sigmaB = ratio * z;
        const zDelta = deltaNoiseMultiplier(z, sigmaB);
        expect(zDelta).toBeGreaterThan(z);
        expect(zDelta ** -2 + (2 * sigmaB) ** -2).toBeCloseTo(z ** -2, 9);
      }),
    );
    expect(deltaNoiseMultiplier(1.3)).toBe(1.3);
    expect(() => deltaNoiseMultiplier(1, 0.5)).toThrow(/more than half the noiseMultiplier 1/);
  });

  test('S moves by exp(−η(b̄ − γ)): down when too many sites are within it, up when too few', () => {
    const a = { targetQuantile: 0.5, learningRate: 0.2 };
    expect(nextClipNorm(1, 0.5, a)).toBe(1);
    expect(nextClipNorm(1, 1, a)).toBeCloseTo(Math.exp(-0.1), 15);
    expect(nextClipNorm(2, 0, a)).toBeCloseTo(2 * Math.exp(0.1), 15);
  });

  test.each([0.5, 0.8])('converges to the %d quantile of the sites’ update norms', (gamma) => {
    // 100 sites per round whose norms are log-normal around 2 (a spread like real updates'); S starts 20× too small.
    const rng = createRng(5);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    const normOf = () => 2 * Math.exp(0.5 * normal());
    const adaptive = { targetQuantile: gamma, learningRate: 0.2, countNoiseMultiplier: 5 };
    const noise = GaussianNoise.seeded(9);
    let S = 0.1;
    const late: number[] = [];
    for (let round = 0; round < 400; round++) {
      const agg = new DpFedAvgAggregator(1, { clipNorm: S, noiseMultiplier: 1, noise: 'central', selected: 100, adaptive });
      for (let site = 0; site < 100; site++) {
        const norm = normOf();
        agg.add(Float32Array.of(norm), norm <= S);
      }
      S = agg.finish(noise).nextClipNorm;
      if (round >= 300) late.push(S);
    }
    // The γ quantile of 2·exp(0.5·N(0,1)) is 2·exp(0.5·Φ⁻¹(γ)): 2 at the median, 2·e^(0.5·0.8416) at 0.8.
    const quantile = 2 * Math.exp(0.5 * (gamma === 0.5 ? 0 : 0.8416212335729143));
    const meanS = late.reduce((s, x) => s + x, 0) / late.length;
    expect(Math.abs(meanS / quantile - 1)).toBeLessThan(0.05);
  });
});
