/**
 * Client-level differential privacy of a run (`privacy.mode: client`, DP-FedAvg with optional adaptive
 * clipping): the settings each round's fit instruction carries, the noised mean of the sites' clipped
 * changes that replaces the strategy's weighted mean, the run's accountant, and the stop before a round
 * that would take ε past `privacy.targetEpsilon`. The math is `DpFedAvgAggregator` in `@ftl/shared`;
 * this file holds the run's state between rounds and reads it back from the run's events on a resume.
 */
import { randomFillSync } from 'node:crypto';
import {
  type AdaptiveClipping,
  type ClientDpNoise,
  type ClientPrivacy,
  deltaNoiseMultiplier,
  DpFedAvgAggregator,
  ErrorCode,
  FtlError,
  type FitResult,
  GaussianNoise,
  type GaussianSource,
  RdpAccountant,
  type SampledGaussian,
  updateDelta,
} from '@ftl/shared';
import type { CoordinatorConfig } from './config.js';
import type { Store, StoredEvent } from './store/store.js';
import type { ScreenedUpdate } from './update-screen.js';

/** A run's client-level DP settings, resolved from its privacy block. */
export interface ClientDpSettings {
  /** z: what the accountant is charged for (the update's own noise is z_Δ ≥ z with adaptive clipping). */
  noiseMultiplier: number;
  /** The first S. */
  clipNorm: number;
  noise: ClientDpNoise;
  adaptive?: AdaptiveClipping | undefined;
  delta: number;
  targetEpsilon?: number | undefined;
}

/**
 * One round's client-level privacy, as the `round-privacy` event records it beside the sites' own
 * reports (`client`): the mechanism run, what was released of the clipping, and the run's ε after it.
 */
export interface ClientLevelPrivacy {
  /** ε of the run's global models so far (every round up to this one), at `delta`. */
  epsilon: number;
  delta: number;
  /** q = selected / ready sites: the sampling the accountant assumes (Poisson at this rate). */
  sampleRate: number;
  selected: number;
  ready: number;
  /** Updates in the mean (answered and accepted; the denominator stays `selected`). */
  updates: number;
  /** z, charged to the accountant. */
  noiseMultiplier: number;
  /** z_Δ: the noise on the sum of the changes, as a multiple of S (z without adaptive clipping). */
  deltaNoiseMultiplier: number;
  noise: ClientDpNoise;
  /** S of the round. */
  clipNorm: number;
  /** S of the next round. */
  nextClipNorm: number;
  /** b̄: the noised fraction of sites whose change was within S (adaptive clipping). */
  unclippedFraction?: number;
  /** The run's target, when it has one. */
  targetEpsilon?: number;
  /**
   * Local noise: the ε against the coordinator itself of a site that took part in every round so far —
   * the coordinator knows who it selected, so no sampling amplification (q = 1, z per round).
   */
  localEpsilon?: number;
}

/** The run's client-level DP settings, or undefined when it has none. */
export function clientDpSettings(config: Pick<CoordinatorConfig, 'privacy'>): ClientDpSettings | undefined {
  const p = config.privacy;
  if (p.mode !== 'client' || p.noiseMultiplier === undefined || p.clipNorm === undefined) return undefined;
  return {
    noiseMultiplier: p.noiseMultiplier,
    clipNorm: p.clipNorm,
    noise: p.noise ?? 'central',
    adaptive: p.adaptiveClipping,
    delta: p.delta,
    targetEpsilon: p.targetEpsilon,
  };
}

/**
 * Client-level DP of one run: the current S, the accountant, and each round's noised aggregate.
 *
 * @example
 * const dp = new ClientDp(settings);
 * const stop = dp.stopBefore(round, selected.length, ready.length); // a message, or undefined
 * const { mean, privacy } = dp.release(global, updates, selected.length, ready.length); // then the strategy's step on `mean`
 */
export class ClientDp {
  /** S of the next round. */
  clipNorm: number;
  private readonly accountant = new RdpAccountant();
  /** Local noise: the unamplified rounds a site could have taken part in, against the coordinator. */
  private readonly local = new RdpAccountant();
  private readonly zDelta: number;

  /**
   * @param noise the coordinator's randomness: secret (the system's generator) unless a test seeds it.
   * @param history the rounds already played (a resumed run's `round-privacy` client entries), in order.
   */
  constructor(
    readonly settings: ClientDpSettings,
    private readonly noise: GaussianSource = new GaussianNoise((words) => randomFillSync(words)),
    history: readonly ClientLevelPrivacy[] = [],
  ) {
    this.zDelta = deltaNoiseMultiplier(settings.noiseMultiplier, settings.adaptive?.countNoiseMultiplier);
    this.clipNorm = settings.clipNorm;
    for (const h of history) {
      this.charge(h.sampleRate);
      this.clipNorm = h.nextClipNorm;
    }
  }

  /** What every site is told in a round's fit instruction (`config.clientPrivacy`). */
  instruction(): ClientPrivacy {
    return {
      clipNorm: this.clipNorm,
      noise: this.settings.noise,
      noiseMultiplier: this.settings.noiseMultiplier,
      ...(this.settings.adaptive ? { reportUnclipped: true } : {}),
    };
  }

  /** The mechanism one round of `selected` among `ready` sites runs, as the accountant takes it. */
  private round(sampleRate: number): SampledGaussian {
    return { noiseMultiplier: this.settings.noiseMultiplier, sampleRate, steps: 1 };
  }

  private charge(sampleRate: number): void {
    this.accountant.step(this.round(sampleRate));
    this.local.step({ noiseMultiplier: this.settings.noiseMultiplier, sampleRate: 1, steps: 1 });
  }

  /** ε of the rounds played so far (0 before the first). */
  epsilon(): number {
    return this.accountant.ledger.length === 0 ? 0 : this.accountant.epsilon(this.settings.delta).epsilon;
  }

  /**
   * Why the run must stop before this round, or undefined: with a target ε, a round of `selected` among
   * `ready` sites that would take ε past it.
   */
  stopBefore(round: number, selected: number, ready: number): string | undefined {
    const target = this.settings.targetEpsilon;
    if (target === undefined || selected === 0 || ready === 0) return undefined;
    const sampleRate = Math.min(1, selected / ready);
    const after = this.accountant.epsilonAfter(this.round(sampleRate), this.settings.delta).epsilon;
    if (after <= target) return undefined;
    return (
      `privacy budget reached: round ${round} (${selected} of ${ready} sites, q = ${round4(sampleRate)}, z = ${this.settings.noiseMultiplier}) would take the run's client-level ε ` +
      `from ${round4(this.epsilon())} to ${round4(after)}, past privacy.targetEpsilon ${target} at δ ${this.settings.delta}; the run ends with the global model of round ${round - 1}`
    );
  }

  /**
   * The round's DP-FedAvg release: each accepted update's change from `global` (clipped to S again with
   * central noise), summed, noised and divided by `selected`, as one update of weights global + mean. The
   * strategy then takes its server step on it (FedAvg takes it as it is; FedAvgM and FedAdam step on it
   * as a pseudo-gradient), which is post-processing of a noised release and changes no ε. The accountant
   * is charged and S moves on here: the noised mean was computed.
   */
  release(
    global: Float32Array,
    updates: ReadonlyArray<{ values: Float32Array; loss: number; unclipped?: boolean | undefined }>,
    selected: number,
    ready: number,
  ): { mean: ScreenedUpdate; privacy: ClientLevelPrivacy } {
    const clipNorm = this.clipNorm;
    const aggregator = new DpFedAvgAggregator(global.length, {
      clipNorm,
      noiseMultiplier: this.settings.noiseMultiplier,
      noise: this.settings.noise,
      adaptive: this.settings.adaptive,
      selected,
    });
    for (const u of updates) aggregator.add(updateDelta(u.values, global), u.unclipped === true);
    const result = aggregator.finish(this.noise);
    const sampleRate = Math.min(1, selected / ready);
    this.charge(sampleRate);
    this.clipNorm = result.nextClipNorm;
    const values = new Float32Array(global.length);
    for (let i = 0; i < values.length; i++) values[i] = global[i]! + result.meanDelta[i]!;
    const loss = updates.length > 0 ? updates.reduce((s, u) => s + u.loss, 0) / updates.length : 0;
    const mean: ScreenedUpdate = { clientId: 'dp-mean', values, numExamples: 1, loss };
    const privacy = this.report(
      { sampleRate, selected, ready, updates: result.count, clipNorm, nextClipNorm: result.nextClipNorm },
      result.unclippedFraction,
    );
    return { mean, privacy };
  }

  /**
   * Secure aggregation's release (secure-round.ts): each site clipped its change to S and, with central
   * noise, added its share N(0, (z·S)²/t) of the noise before masking (t the threshold, so any sum the
   * coordinator can unmask carries at least the whole noise); the coordinator only ever sees `sum`, the
   * survivors' clipped, noised changes added up. Divided by `selected` and charged as {@link release}
   * does; S stays, since adaptive clipping is refused with secure aggregation.
   */
  releaseSum(
    global: Float32Array,
    sum: ArrayLike<number>,
    updates: number,
    loss: number,
    selected: number,
    ready: number,
  ): { mean: ScreenedUpdate; privacy: ClientLevelPrivacy } {
    const clipNorm = this.clipNorm;
    const values = new Float32Array(global.length);
    for (let i = 0; i < values.length; i++) values[i] = global[i]! + sum[i]! / selected;
    const sampleRate = Math.min(1, selected / ready);
    this.charge(sampleRate);
    const mean: ScreenedUpdate = { clientId: 'dp-mean', values, numExamples: 1, loss };
    return { mean, privacy: this.report({ sampleRate, selected, ready, updates, clipNorm, nextClipNorm: clipNorm }) };
  }

  /** A round's record of what was released, after the accountant was charged for it. */
  private report(
    round: Pick<ClientLevelPrivacy, 'sampleRate' | 'selected' | 'ready' | 'updates' | 'clipNorm' | 'nextClipNorm'>,
    unclippedFraction?: number,
  ): ClientLevelPrivacy {
    const { settings } = this;
    return {
      epsilon: this.epsilon(),
      delta: settings.delta,
      ...round,
      noiseMultiplier: settings.noiseMultiplier,
      deltaNoiseMultiplier: this.zDelta,
      noise: settings.noise,
      ...(unclippedFraction !== undefined ? { unclippedFraction } : {}),
      ...(settings.targetEpsilon !== undefined ? { targetEpsilon: settings.targetEpsilon } : {}),
      ...(settings.noise === 'local' ? { localEpsilon: this.local.epsilon(settings.delta).epsilon } : {}),
    };
  }
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** The client-level entries of a run's recorded `round-privacy` events, in the order they were played. */
export function clientPrivacyHistory(events: readonly StoredEvent[]): ClientLevelPrivacy[] {
  return events.flatMap((e) => {
    const client = e.type === 'round-privacy' ? (e.data as { client?: ClientLevelPrivacy }).client : undefined;
    return client ? [client] : [];
  });
}

/**
 * Checks what a site says of its clipping in a client-level DP run: with adaptive clipping every update
 * says whether its change was within S, since the count it feeds is part of what is accounted.
 *
 * @throws FtlError(INVALID_MESSAGE) for an update of an adaptive-clipping run without it.
 */
export function checkClientClip(config: Pick<CoordinatorConfig, 'privacy' | 'runId'>, msg: Pick<FitResult, 'clientPrivacy'>): void {
  const p = config.privacy;
  if (p.mode !== 'client' || !p.adaptiveClipping || msg.clientPrivacy) return;
  throw new FtlError(
    ErrorCode.InvalidMessage,
    `fit-result.clientPrivacy is missing: run ${config.runId} clips adaptively, and every update says whether its change was within S ({unclipped: true|false})`,
  );
}

/** Each run's client-level DP, beside its context: built on the first round the context plays. */
const perRun = new WeakMap<object, ClientDp>();

/**
 * The client-level DP of the run `ctx` plays (undefined when it has none), built on first use; a resumed
 * run reads its recorded rounds back, so its ε and S carry on from where it stopped.
 */
export function clientDpOf(ctx: { readonly config: CoordinatorConfig; readonly store?: Store | undefined }): ClientDp | undefined {
  const settings = clientDpSettings(ctx.config);
  if (!settings) return undefined;
  let dp = perRun.get(ctx);
  if (!dp) {
    const history = ctx.store ? clientPrivacyHistory(ctx.store.listEvents(ctx.config.runId)) : [];
    dp = new ClientDp(settings, undefined, history);
    perRun.set(ctx, dp);
  }
  return dp;
}
