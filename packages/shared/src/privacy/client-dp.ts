import { ErrorCode, FtlError } from '../errors.js';
import type { GaussianSource } from './gaussian-noise.js';

// Client-level DP-FedAvg (McMahan et al. 2018, "Learning differentially private recurrent language
// models") with adaptive clipping (Andrew et al. 2021, "Differentially private learning with adaptive
// clipping"). The unit protected is a whole site: each selected site's change to the global model is
// clipped to L2 norm S, the coordinator averages the clipped changes over a fixed denominator m and adds
// N(0, (z·S)²) to their sum, so one site joining or leaving moves the sum by at most S against noise z·S:
// the sampled Gaussian mechanism, with the sites' selection as the sampling. The pieces are small and
// pure so that secure aggregation can clip at the site and noise the sum it reveals with the same code.

/** Who adds the noise: the coordinator to the round's sum (`central`), or each site to its own clipped change (`local`). */
export const CLIENT_DP_NOISES = ['central', 'local'] as const;
export type ClientDpNoise = (typeof CLIENT_DP_NOISES)[number];

/**
 * Adaptive clipping (Andrew et al. 2021): the clip norm follows the `targetQuantile` of the sites' update
 * norms, S ← S·exp(−learningRate·(b̄ − targetQuantile)), where b̄ is the fraction of sites whose change
 * was within S, released with noise N(0, countNoiseMultiplier²) on the count.
 */
export interface AdaptiveClipping {
  /** γ in (0, 1): the share of sites whose change should fall within S (0.5: the median norm). */
  targetQuantile: number;
  /** η_C > 0: how fast S moves (0.2 in the paper). */
  learningRate: number;
  /** σ_b > 0: the standard deviation of the noise on the count of unclipped sites. */
  countNoiseMultiplier: number;
}

/** The L2 norm of `v`, summed in double precision. */
export function l2Norm(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

/**
 * A site's change to the model: `trained − global`, value by value over every trained value it sends.
 *
 * @throws FtlError(WEIGHTS_MISMATCH) when the two differ in length.
 */
export function updateDelta(trained: Float32Array, global: Float32Array): Float32Array {
  if (trained.length !== global.length) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `update has ${trained.length} values but the global model has ${global.length}; the site must train the current model`,
    );
  }
  const out = new Float32Array(trained.length);
  for (let i = 0; i < out.length; i++) out[i] = trained[i]! - global[i]!;
  return out;
}

/** A change clipped to S: the values, the norm it had before, and whether it was within S already (the bit b). */
export interface ClippedDelta {
  delta: Float32Array;
  norm: number;
  /** b = [‖Δ‖ ≤ S]: what adaptive clipping counts. */
  unclipped: boolean;
}

/**
 * Margin below S a clipped change is scaled to: float32 rounding of the scaled values could otherwise
 * leave the norm a few ulps above S, and the noise is calibrated to S exactly.
 */
const CLIP_MARGIN = 1 - 2 ** -20;

/**
 * Clips a site's change to L2 norm at most `clipNorm` (S), keeping its direction: Δ·min(1, S/‖Δ‖). A
 * change already within S comes back as an unchanged copy with `unclipped` true.
 *
 * @throws FtlError(INVALID_CONFIG) for S not finite and > 0; FtlError(NON_FINITE_WEIGHTS) for a change with no finite norm.
 * @example
 * const { delta, unclipped } = clipDelta(updateDelta(trained, global), 0.5);
 */
export function clipDelta(delta: Float32Array, clipNorm: number): ClippedDelta {
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) {
    throw new FtlError(ErrorCode.InvalidConfig, `clipNorm must be a finite number > 0 (got ${clipNorm})`);
  }
  const norm = l2Norm(delta);
  if (!Number.isFinite(norm)) {
    throw new FtlError(ErrorCode.NonFiniteWeights, `the update's change has a non-finite norm (${norm}); it cannot be clipped`);
  }
  if (norm <= clipNorm) return { delta: delta.slice(), norm, unclipped: true };
  const scale = (clipNorm / norm) * CLIP_MARGIN;
  const out = new Float32Array(delta.length);
  for (let i = 0; i < out.length; i++) out[i] = delta[i]! * scale;
  return { delta: out, norm, unclipped: false };
}

/** What a site needs to prepare its update in a client-level DP round (the fit instruction's `clientPrivacy`). */
export interface SiteClipSettings {
  /** S for this round. */
  clipNorm: number;
  noise: ClientDpNoise;
  /** z: with `local` noise the site adds N(0, (z·S)²) to every value of its clipped change. */
  noiseMultiplier: number;
}

/**
 * What a site sends in a client-level DP round: the global weights plus its change clipped to S (and,
 * with `local` noise, plus N(0, (z·S)²) per value), so the update travels as trained weights like any
 * other; and the bit b = [‖Δ‖ ≤ S] for adaptive clipping.
 *
 * @param noise the site's secret randomness; needed only with `local` noise.
 */
export function clipSiteUpdate(
  trained: Float32Array,
  global: Float32Array,
  settings: SiteClipSettings,
  noise?: GaussianSource,
): { values: Float32Array; unclipped: boolean; norm: number } {
  const clipped = clipDelta(updateDelta(trained, global), settings.clipNorm);
  const values = clipped.delta;
  if (settings.noise === 'local') {
    if (!noise) throw new FtlError(ErrorCode.InvalidConfig, 'local noise needs a source of secret randomness');
    addNoise(values, settings.noiseMultiplier * settings.clipNorm, noise);
  }
  for (let i = 0; i < values.length; i++) values[i] = global[i]! + values[i]!;
  return { values, unclipped: clipped.unclipped, norm: clipped.norm };
}

/** Adds independent N(0, std²) to every value of `values`, in place. */
export function addNoise(values: Float32Array, std: number, noise: GaussianSource): Float32Array {
  if (std === 0 || values.length === 0) return values;
  const n = noise.gaussian(new Float32Array(values.length), std);
  for (let i = 0; i < values.length; i++) values[i] = values[i]! + n[i]!;
  return values;
}

/**
 * The noise multiplier z_Δ the sum of the clipped changes gets when adaptive clipping also releases the
 * noised count of unclipped sites, so that both releases together are one Gaussian mechanism of noise
 * multiplier z (Andrew et al. 2021, theorem 1): each site's centred bit b − ½ has sensitivity ½, so
 * z⁻² = z_Δ⁻² + (2σ_b)⁻², i.e. z_Δ = (z⁻² − (2σ_b)⁻²)^(−½). Without adaptive clipping, z_Δ = z.
 *
 * @throws FtlError(INVALID_CONFIG) when 2σ_b ≤ z: the count alone would spend the whole budget.
 * @example
 * deltaNoiseMultiplier(1, 5); // 1.005…: the count's noise costs half a percent more noise on the update
 */
export function deltaNoiseMultiplier(noiseMultiplier: number, countNoiseMultiplier?: number): number {
  if (countNoiseMultiplier === undefined) return noiseMultiplier;
  const rest = noiseMultiplier ** -2 - (2 * countNoiseMultiplier) ** -2;
  if (!(rest > 0)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `countNoiseMultiplier ${countNoiseMultiplier} must be more than half the noiseMultiplier ${noiseMultiplier}, or the count alone spends the whole budget; raise it (the paper uses about m/20 for m sites per round)`,
    );
  }
  return rest ** -0.5;
}

/**
 * The next clip norm of adaptive clipping: S·exp(−η_C·(b̄ − γ)). Too many sites within S (b̄ > γ)
 * shrinks it, too few grows it; the geometric step keeps S > 0 and moves it by the same factor whatever
 * its scale.
 */
export function nextClipNorm(
  clipNorm: number,
  unclippedFraction: number,
  adaptive: Pick<AdaptiveClipping, 'targetQuantile' | 'learningRate'>,
): number {
  return clipNorm * Math.exp(-adaptive.learningRate * (unclippedFraction - adaptive.targetQuantile));
}

/** One round of DP-FedAvg as the coordinator runs it. */
export interface DpFedAvgRound {
  /** S of the round: the norm the sites clipped to. */
  clipNorm: number;
  /** z: the noise multiplier the accountant is charged for. */
  noiseMultiplier: number;
  noise: ClientDpNoise;
  adaptive?: AdaptiveClipping | undefined;
  /**
   * m: the sites selected for the round, the mean's fixed denominator. It does not depend on which sites
   * answered or what they sent, so one site more or less moves the sum by at most S and the mean by S/m.
   */
  selected: number;
}

/** The released outcome of a DP-FedAvg round. */
export interface DpFedAvgResult {
  /** The noised mean change: (Σ clipped Δ + N(0, (z_Δ·S)²))/m with central noise; Σ Δ/m with local noise (the sites noised theirs). */
  meanDelta: Float32Array;
  /** The standard deviation of the noise the coordinator added to each value of the mean: z_Δ·S/m (0 with local noise). */
  noiseStd: number;
  /** b̄: the noised fraction of sites within S (adaptive clipping only). */
  unclippedFraction?: number;
  /** S for the next round (the same S without adaptive clipping). */
  nextClipNorm: number;
  /** Updates added. */
  count: number;
}

/**
 * The coordinator's side of a DP-FedAvg round, streaming: each site's change goes in as it is, the
 * sum is one model's worth of memory. With central noise every change is clipped to S again here, so the
 * bound the noise relies on holds whatever a site sent; with local noise the changes arrive noised and
 * are summed as they are (clipping a noised change would cut its noise).
 *
 * @example
 * const agg = new DpFedAvgAggregator(global.length, { clipNorm: 1, noiseMultiplier: 1, noise: 'central', selected: 10 });
 * for (const u of updates) agg.add(updateDelta(u.values, global), u.unclipped);
 * const { meanDelta, nextClipNorm } = agg.finish(noise);
 */
export class DpFedAvgAggregator {
  private readonly sum: Float64Array;
  private count = 0;
  private unclipped = 0;

  /** @throws FtlError(INVALID_CONFIG) for a round whose settings cannot hold (see {@link deltaNoiseMultiplier}). */
  constructor(
    length: number,
    private readonly round: DpFedAvgRound,
  ) {
    if (!(Number.isInteger(round.selected) && round.selected >= 1)) {
      throw new FtlError(ErrorCode.InvalidConfig, `selected must be a positive integer (got ${round.selected})`);
    }
    if (round.adaptive && round.noise === 'local') {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        'adaptive clipping needs central noise: with local noise the count of unclipped sites would be seen exactly',
      );
    }
    deltaNoiseMultiplier(round.noiseMultiplier, round.adaptive?.countNoiseMultiplier);
    this.sum = new Float64Array(length);
  }

  /** Adds one site's change (trained − global) and its bit b = [‖Δ‖ ≤ S] (counted only with adaptive clipping). */
  add(delta: Float32Array, unclipped = false): void {
    if (delta.length !== this.sum.length) {
      throw new FtlError(ErrorCode.WeightsMismatch, `update has ${delta.length} values but the global model has ${this.sum.length}`);
    }
    const d = this.round.noise === 'central' ? clipDelta(delta, this.round.clipNorm).delta : delta;
    for (let i = 0; i < d.length; i++) this.sum[i]! += d[i]!;
    this.count++;
    if (unclipped) this.unclipped++;
  }

  /** The noised mean change and the next S; `noise` is the coordinator's secret randomness. */
  finish(noise: GaussianSource): DpFedAvgResult {
    const { clipNorm, noiseMultiplier, adaptive, selected } = this.round;
    const m = selected;
    const meanDelta = new Float32Array(this.sum.length);
    let noiseStd = 0;
    if (this.round.noise === 'central') {
      const zDelta = deltaNoiseMultiplier(noiseMultiplier, adaptive?.countNoiseMultiplier);
      // Noise of std z_Δ·S on the sum is z_Δ·S/m on the mean.
      noiseStd = (zDelta * clipNorm) / m;
      noise.gaussian(meanDelta, noiseStd);
    }
    for (let i = 0; i < meanDelta.length; i++) meanDelta[i] = meanDelta[i]! + this.sum[i]! / m;
    if (!adaptive) return { meanDelta, noiseStd, nextClipNorm: clipNorm, count: this.count };
    // The centred count Σ(b − ½) has sensitivity ½ under one site more or less; noised, then back to a fraction.
    const [countNoise] = noise.gaussian(new Float32Array(1), adaptive.countNoiseMultiplier);
    const unclippedFraction = (this.unclipped - this.count / 2 + countNoise!) / m + 0.5;
    return { meanDelta, noiseStd, unclippedFraction, nextClipNorm: nextClipNorm(clipNorm, unclippedFraction, adaptive), count: this.count };
  }
}
