import {
  backboneLayersOf,
  encodeWeights,
  PROTOCOL_VERSION,
  type Envelope,
  type HeadConfig,
  type Logger,
  type Normalization,
  type RecordPrivacy,
  type ServerToClientEvents,
  type Strategy,
  type TableEncoding,
} from '@ftl/shared';
import type { ServedBackbone } from './backbone-server.js';
import type { CoordinatorConfig } from './config.js';
import type { ResolvedHeadInit } from './run-config.js';
import type { GlobalModel } from './global-model.js';
import type { ExclusionLog } from './run-exclusions.js';
import type { RunHost } from './run-host.js';
import type { RunProgress } from './run-summary.js';
import type { Store } from './store/store.js';
import type { TrainableSets } from './trainable-sets.js';
import type { UpdateIntake } from './update-intake.js';
import type { TrustPolicy } from './update-screen.js';

/**
 * What the phases of one run share: its settings and model, the host that reaches its sites, the store
 * that keeps it, and the run's own parts (strategy, intake, exclusions). A {@link FederatedRun} builds one
 * and hands it to each phase in turn (waiting, normalisation, head init, rounds, personalization, export).
 */
export interface RunContext {
  readonly config: CoordinatorConfig;
  readonly head: HeadConfig;
  readonly backbone: ServedBackbone;
  readonly host: RunHost;
  readonly log: Logger;
  /** Where the run, its rounds and checkpoints persist; without one the run lives in memory only. */
  readonly store?: Store;
  readonly strategy: Strategy;
  readonly trust: TrustPolicy;
  readonly intake: UpdateIntake;
  readonly exclusions: ExclusionLog;
  readonly sets: TrainableSets;
  readonly model: GlobalModel;
  /** How the head starts: `config.headInit` with `auto` resolved for this run's head (`resolvedHeadInit`). */
  readonly headInit: ResolvedHeadInit;
  /** Federated input normalisation, fixed before the first round (runs with `normalization` ≠ none). */
  normalization?: Normalization;
  /** A tabular run's encoding of its columns, fixed before the first round from the sites' summaries. */
  tableEncoding?: TableEncoding;
  /** Says which phase the run is in, for progress displays. */
  setPhase(phase: RunProgress['phase'], round?: number): void;
  /** Whether a shutdown asked the run to stop now (checked after each awaited phase). */
  interrupted(): boolean;
}

/**
 * Sends the global model to each of `ids` as `event` (the envelope, the encoded weights, the run's
 * normalisation and what `extra` adds for the i-th site); a site that is gone is failed in `collector`
 * with `why`, so the round does not wait for it.
 */
export function sendModel<E extends 'fit' | 'evaluate' | 'personalize'>(
  ctx: RunContext,
  collector: { fail(clientId: string, why: string): void },
  event: E,
  round: number,
  ids: readonly string[],
  why: string,
  extra: (i: number) => Omit<Parameters<ServerToClientEvents[E]>[0], keyof Envelope | 'weights' | 'normalization'>,
): void {
  const weights = encodeWeights(ctx.model.weights);
  const envelope = { protocol: PROTOCOL_VERSION, runId: ctx.config.runId, round, modelVersion: ctx.model.version };
  ids.forEach((id, i) => {
    const message = { ...envelope, weights, ...normalizationField(ctx), ...extra(i) } as Parameters<ServerToClientEvents[E]>[0];
    if (!ctx.host.send(id, event, message)) collector.fail(id, why);
  });
}

/** The normalisation every instruction carries, when the run normalises its inputs. */
export function normalizationField(ctx: RunContext): { normalization?: Normalization } {
  return ctx.normalization ? { normalization: ctx.normalization } : {};
}

/**
 * The record-level DP mechanism every training instruction carries when the run has one (`privacy.mode`
 * record): σ, C, the sampling and the δ sites report ε at. No seed: each site's noise is its own secret.
 */
export function privacyField(ctx: RunContext): { privacy?: RecordPrivacy } {
  const p = ctx.config.privacy;
  if (p.mode !== 'record' || p.clipNorm === undefined) return {};
  const noise =
    p.noiseMultiplier !== undefined
      ? { noiseMultiplier: p.noiseMultiplier }
      : p.targetEpsilon !== undefined
        ? { targetEpsilon: p.targetEpsilon, plannedEpochs: plannedEpochs(ctx.config) }
        : undefined;
  if (!noise) return {};
  return { privacy: { ...noise, clipNorm: p.clipNorm, sampling: p.sampling, delta: p.delta } };
}

/**
 * The epochs of local training a run may ask of a site in all: each round's (from the epochs schedule),
 * whether or not early stopping ends it sooner, plus personalisation's. A site that sets its noise from
 * an ε target spreads that target over these.
 */
export function plannedEpochs(config: Pick<CoordinatorConfig, 'rounds' | 'fit' | 'schedule' | 'personalizeEpochs'>): number {
  let epochs = config.personalizeEpochs;
  for (let round = 1; round <= config.rounds; round++) epochs += roundEpochs(config.fit, config.schedule, round);
  return epochs;
}

/** A round's local epochs: the epochs schedule's latest entry that has started, else the fit's. */
export function roundEpochs(fit: CoordinatorConfig['fit'], schedule: CoordinatorConfig['schedule'], round: number): number {
  return schedule.epochs.filter((s) => s.fromRound <= round).at(-1)?.epochs ?? fit.epochs;
}

/** The backbone learning-rate factor, sent only when the global model holds backbone layers. */
export function backboneRate(ctx: RunContext): { backboneLrFactor?: number } {
  return backboneLayersOf(ctx.model.weights.specs).length > 0 ? { backboneLrFactor: ctx.config.fineTuning.backboneLrFactor } : {};
}
