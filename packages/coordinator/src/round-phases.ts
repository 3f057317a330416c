/**
 * One round as explicit phases, in order: select → fit → aggregate → evaluate → commit. Each phase is a
 * function of the run's context; only aggregate changes the global model, and only commit writes the
 * round to the store. {@link runRounds} plays rounds until the last, a stop, an early stop, a round every
 * selected site refused for its privacy budget, or a failure.
 */
import { type ClientPrivacy, deriveSeed, ErrorCode, type FitConfig, FtlError, type Logger, type Weights } from '@ftl/shared';
import { clientDpOf, type ClientLevelPrivacy } from './client-dp.js';
import type { CoordinatorConfig } from './config.js';
import type { EarlyStopping } from './early-stopping.js';
import { median } from './median.js';
import type { Collected } from './round-collector.js';
import { budgetsSpentMessage, everySiteSpent, largestEpsilon, recordRoundPrivacy, roundPrivacy, type RoundPrivacy } from './round-privacy.js';
import type { RoundRecord } from './round-table.js';
import { backboneRate, privacyField, roundEpochs, sendModel, type RunContext } from './run-context.js';
import { exportRunModel } from './run-export.js';
import { aggregateSecure, secureFit, secureRecord, type SecureFit } from './secure-round.js';
import { aggregateKept, contentRefusals, screenRound, type StageAnswer } from './update-intake.js';
import { capCounts } from './update-screen.js';

/** The phases of a round, in the order they run. */
export const ROUND_PHASES = ['select', 'fit', 'aggregate', 'evaluate', 'commit'] as const;

/** The round's local training settings: the learning rate decayed per round, epochs from the schedule. */
export function scheduledFit(fit: CoordinatorConfig['fit'], schedule: CoordinatorConfig['schedule'], round: number): CoordinatorConfig['fit'] {
  const epochs = roundEpochs(fit, schedule, round);
  return { ...fit, epochs, learningRate: fit.learningRate * schedule.lrDecay ** (round - 1) };
}

/** A round that was played to its end: what commit records. */
export interface TrainedRound {
  interrupted?: false;
  budgetsSpent?: undefined;
  record: RoundRecord;
  participants: string[];
  /** The medians of the sites' validation losses and accuracies: what early stopping decides on. */
  medians: { loss: number; accuracy: number };
  /** Each site's evaluation of the new global model on its validation data. */
  sites: SiteEvaluation[];
  rejected: Array<{ clientId: string; reason: string; message: string }>;
  /** Selected sites that refused the round for their privacy budget. */
  budgetRefusals: number;
}

/**
 * How one round ended: recorded (to commit), cut short by a shutdown (nothing to commit), or refused by
 * every selected site for its privacy budget (nothing trained, nothing to commit: the run ends).
 */
export type PlayedRound =
  | { interrupted: true }
  | { interrupted?: false; budgetsSpent: RoundPrivacy }
  | { interrupted?: false; budgetsSpent?: undefined; clientBudgetReached: string }
  | TrainedRound;

/** select: the ready clients the strategy asks to train this round. */
export function select(ctx: RunContext, round: number): string[] {
  return ctx.strategy.configureFit(round, ctx.host.readyClients(ctx.config.runId));
}

/** fit: sends the global model to the selected clients and collects their checked updates (update-intake.ts). */
export async function fit(ctx: RunContext, round: number, selected: readonly string[]): Promise<Collected<StageAnswer['fit']>> {
  const { config, model } = ctx;
  const { runId } = config;
  ctx.setPhase('fit', round);
  const configFor = fitConfigFor(ctx, round);
  return ctx.intake.collect('fit', { runId, round, modelVersion: model.version, expected: selected }, config.roundDeadlineMs, (collector) =>
    sendModel(ctx, collector, 'fit', round, selected, 'disconnected before the round started', (i) => ({ config: configFor(i) })),
  );
}

/** The training settings of round `round` for the i-th selected site: the schedule, its seed, the strategy's extras and the run's privacy. */
export function fitConfigFor(ctx: RunContext, round: number): (i: number) => FitConfig {
  const { config } = ctx;
  const extras = ctx.strategy.fitExtras(round);
  return (i) => ({
    ...scheduledFit(config.fit, config.schedule, round),
    seed: deriveSeed(config.seed, round, i),
    ...extras,
    ...backboneRate(ctx),
    ...privacyField(ctx),
    ...clientPrivacyField(ctx),
  });
}

/** fit with secure aggregation (secure-round.ts): the same training, answered in four phases whose sum is all the coordinator sees. */
async function secureFitPhase(ctx: RunContext, round: number, selected: readonly string[]): Promise<SecureFit> {
  ctx.setPhase('fit', round);
  return secureFit(ctx, round, selected, fitConfigFor(ctx, round));
}

/** Client-level DP: the settings every training instruction carries (this round's S among them). */
function clientPrivacyField(ctx: RunContext): { clientPrivacy?: ClientPrivacy } {
  const dp = clientDpOf(ctx);
  return dp ? { clientPrivacy: dp.instruction() } : {};
}

/**
 * aggregate: the round's updates through the trust screen, then the strategy; a new global model (version
 * + 1) when there are enough and the aggregate is usable. Returns what the round record needs. With
 * client-level DP the strategy gets the noised mean of the clipped changes (client-dp.ts) instead of the
 * updates, over a denominator of the `selection.selected` sites; the screen's norm bound is off, since
 * clipping bounds every change and excluding one against the round's median would let one site decide
 * whether others count.
 */
export function aggregate(
  ctx: RunContext,
  round: number,
  collected: Collected<StageAnswer['fit']>,
  log: Logger,
  selection: { selected: number; ready: number } = { selected: collected.results.size, ready: collected.results.size },
) {
  const { model, config } = ctx;
  const dp = clientDpOf(ctx);
  const trust = dp ? { ...ctx.trust, normBound: 0 } : ctx.trust;
  const screen = screenRound(model.weights.values, collected, trust, model.moveReference);
  for (const e of screen.excluded) ctx.exclusions.record('update-excluded', round, e, log);
  const kept = screen.kept;
  let status: RoundRecord['status'] = kept.length >= config.minFitClients ? 'aggregated' : 'no-quorum';
  let trainLoss = NaN;
  let clientPrivacy: ClientLevelPrivacy | undefined;
  if (status === 'aggregated') {
    let toStrategy = kept;
    if (dp) {
      const bits = kept.map((u) => ({ ...u, unclipped: collected.results.get(u.clientId)?.clientPrivacy?.unclipped }));
      const released = dp.release(
        model.weights.values,
        bits,
        Math.max(selection.selected, kept.length),
        Math.max(selection.ready, selection.selected),
      );
      toStrategy = [released.mean];
      clientPrivacy = released.privacy;
    }
    const next = aggregateKept(ctx.strategy, round, model.weights.values, toStrategy, log);
    if (next === null) {
      status = 'kept';
    } else {
      model.weights = { specs: model.weights.specs, values: next };
      model.version++;
      if (screen.reference !== undefined) model.moveReference = screen.reference;
    }
    let n = 0;
    trainLoss = 0;
    for (const u of kept) {
      trainLoss += u.loss * u.numExamples;
      n += u.numExamples;
    }
    trainLoss /= n;
  } else {
    log.warn('round-no-quorum', { accepted: kept.length, need: config.minFitClients });
  }
  return { status, trainLoss, participants: kept.map((u) => u.clientId), excluded: screen.excluded.length, clientPrivacy };
}

/** evaluate: the global model on the clients' validation data; weighted summary and the robust medians. */
export async function evaluate(ctx: RunContext, round: number) {
  const { config, host, model, strategy } = ctx;
  const { runId } = config;
  const expected = strategy.configureEvaluate(round, host.readyClients(runId));
  ctx.setPhase('evaluate', round);
  const collected = await ctx.intake.collect(
    'evaluate',
    { runId, round, modelVersion: model.version, expected },
    config.roundDeadlineMs,
    (collector) => sendModel(ctx, collector, 'evaluate', round, expected, 'disconnected before evaluation', () => ({})),
  );
  // A refused evaluation (out of range, or more samples than the site declared) is left out and recorded.
  for (const r of contentRefusals(collected)) ctx.exclusions.record('evaluation-excluded', round, r);
  const answers = [...collected.results.values()];
  // No site outweighs the others by claiming more validation samples; the median decides early stopping.
  const counts = capCounts(
    answers.map((r) => r.numExamples),
    ctx.trust.weightCap,
  );
  const weighted = answers.map((r, i) => ({ numExamples: counts[i]!, loss: r.loss, accuracy: r.accuracy }));
  const summary = strategy.aggregateEvaluate(round, weighted) ?? { loss: NaN, accuracy: NaN, clients: 0 };
  const medians = {
    loss: answers.length > 0 ? median(answers.map((r) => r.loss)) : NaN,
    accuracy: answers.length > 0 ? median(answers.map((r) => r.accuracy)) : NaN,
  };
  const sites = [...collected.results.entries()].map(([client, r]) => ({ client, numExamples: r.numExamples, loss: r.loss, accuracy: r.accuracy }));
  return { loss: summary.loss, accuracy: summary.accuracy, clients: summary.clients, medians, sites };
}

/** select → fit → aggregate → evaluate of one round; a shutdown in between leaves the model as it was. */
export async function playRound(ctx: RunContext, round: number): Promise<PlayedRound> {
  const { host, model } = ctx;
  const t0 = performance.now();
  const in0 = host.bytes.received;
  const out0 = host.bytes.sent;
  const log = ctx.log.child({ round });
  const selected = select(ctx, round);
  const ready = host.readyClients(ctx.config.runId).length;
  // Client-level DP: a round that would take the run's ε past its target is not played.
  const budgetReached = clientDpOf(ctx)?.stopBefore(round, selected.length, ready);
  if (budgetReached !== undefined) return { clientBudgetReached: budgetReached };
  log.info('round-start', { selected: selected.length, ready, strategy: ctx.strategy.name });
  // With secure aggregation the coordinator gets the survivors' sum, never an update (secure-round.ts).
  const secured = ctx.config.secureAggregation.enabled ? await secureFitPhase(ctx, round, selected) : undefined;
  const plain = secured ? undefined : await fit(ctx, round, selected);
  const collected = secured?.collected ?? plain!;
  const refusals = secured ? ctx.intake.budgetRefusals('secure-aggregation', secured.collected) : ctx.intake.budgetRefusals('fit', plain!);
  // Recorded whatever follows: a site that trained has spent its ε, even in a round a shutdown cuts short.
  const privacy = roundPrivacy(round, collected, refusals);
  if (privacy) recordRoundPrivacy(ctx.config.runId, privacy, ctx.store, log);
  // A shutdown cut the round short: nothing of it is kept, so the next start runs it again in full.
  if (ctx.interrupted()) return { interrupted: true };
  if (privacy && everySiteSpent(selected, privacy)) return { budgetsSpent: privacy };
  for (const [id, why] of collected.failures) log.warn('client-missed-round', { client: id, why });
  const previous: { weights: Weights; version: number } = { weights: model.weights, version: model.version };
  const fitted = secured
    ? aggregateSecure(ctx, round, secured, log, { selected: selected.length, ready })
    : aggregate(ctx, round, plain!, log, { selected: selected.length, ready });
  if (fitted.clientPrivacy) recordRoundPrivacy(ctx.config.runId, { round, sites: [], refused: [], client: fitted.clientPrivacy }, ctx.store, log);
  const evaluation = await evaluate(ctx, round);
  if (ctx.interrupted()) {
    model.weights = previous.weights;
    model.version = previous.version;
    return { interrupted: true };
  }
  const record: RoundRecord = {
    round,
    status: fitted.status,
    selected: selected.length,
    accepted: fitted.participants.length,
    rejected: collected.rejectedCount,
    excluded: fitted.excluded,
    failed: collected.failures.size,
    trainLoss: fitted.trainLoss,
    valLoss: evaluation.loss,
    valAccuracy: evaluation.accuracy,
    evalClients: evaluation.clients,
    bytesIn: host.bytes.received - in0,
    bytesOut: host.bytes.sent - out0,
    seconds: (performance.now() - t0) / 1000,
    modelVersion: model.version,
  };
  const epsilon = fitted.clientPrivacy?.epsilon ?? largestEpsilon(privacy);
  if (epsilon !== undefined) record.epsilon = epsilon;
  if (secured) record.secureAggregation = secureRecord(secured.summary);
  log.info('round-end', { status: record.status, accepted: record.accepted, excluded: record.excluded, valAccuracy: record.valAccuracy.toFixed(4) });
  return {
    record,
    medians: evaluation.medians,
    sites: evaluation.sites,
    participants: fitted.participants,
    rejected: collected.rejected.map((r) => ({ clientId: r.clientId, reason: r.ack.reason, message: r.ack.message })),
    budgetRefusals: privacy?.refused.length ?? 0,
  };
}

/**
 * commit: a round that trained is stored with its checkpoint in one transaction (a restart resumes after
 * it, never re-runs it); a round without quorum is recorded as failed and ends the run.
 */
export function commit(ctx: RunContext, played: TrainedRound): void {
  const { config, store, model, strategy } = ctx;
  const { record, participants, rejected } = played;
  if (record.status === 'no-quorum') {
    store?.recordFailedRound(config.runId, { record, participants, rejected });
    return;
  }
  store?.commitRound(
    config.runId,
    { record, participants, rejected },
    {
      modelVersion: model.version,
      specs: model.weights.specs,
      values: model.weights.values,
      strategyState: strategy.state(),
    },
  );
}

/** One site's evaluation of a round's global model on its own validation split. */
export interface SiteEvaluation {
  client: string;
  numExamples: number;
  loss: number;
  accuracy: number;
}

/** The global model after a round, for a listener that wants to look at it (a simulation's held-out score). */
export interface RoundSnapshot {
  weights: Weights;
  modelVersion: number;
  /** Each site's evaluation of it (empty for a round that did not train). */
  sites: readonly SiteEvaluation[];
  /** Writes this model as the run's export would (backbone, head and input normalisation) into `dir`. */
  exportTo(dir: string): Promise<void>;
}

/** Hears each round as it is committed (and each retried round); the next round waits for a returned promise. */
export type RoundListener = (record: RoundRecord, model: RoundSnapshot) => unknown;

function snapshot(ctx: RunContext, records: readonly RoundRecord[], sites: readonly SiteEvaluation[] = []): RoundSnapshot {
  const { weights, version } = ctx.model;
  return {
    weights,
    modelVersion: version,
    sites,
    exportTo: async (dir) => {
      await exportRunModel({
        backbone: ctx.backbone,
        config: ctx.config,
        head: ctx.head,
        weights,
        dir,
        modelVersion: version,
        rounds: [...records],
        ...(ctx.normalization ? { normalization: ctx.normalization } : {}),
      });
    },
  };
}

/**
 * Plays rounds after those in `records` (appending each committed one) until the last, a stop request,
 * an early stop or a shutdown. A round without quorum is played again, up to `quorumRetries` times, with
 * whoever is ready then; after that it is committed as failed and the run fails with FtlError(Quorum).
 * A round every selected site refused for its privacy budget trained nothing and is not recorded as a
 * round: the rounds end there and the returned `message` says why (the run completes on the model it has).
 */
export async function runRounds(
  ctx: RunContext,
  records: RoundRecord[],
  o: { stopRequested: () => boolean; early: EarlyStopping; onRound?: RoundListener },
): Promise<{ message?: string }> {
  const { config, store, log, model } = ctx;
  const { runId } = config;
  let attempt = 1;
  let round = records.length + 1;
  while (round <= config.rounds && !o.stopRequested()) {
    ctx.sets.enterRound(round, model, ctx.strategy, log, store);
    const played = await playRound(ctx, round);
    if (played.interrupted) break;
    if ('clientBudgetReached' in played) {
      store?.appendEvent(runId, 'privacy-target-reached', { round, message: played.clientBudgetReached });
      log.warn('privacy-target-reached', { round, epsilon: clientDpOf(ctx)?.epsilon() });
      return { message: played.clientBudgetReached };
    }
    if (played.budgetsSpent) {
      const message = budgetsSpentMessage(played.budgetsSpent);
      store?.appendEvent(runId, 'privacy-budgets-spent', { round, sites: played.budgetsSpent.refused.map((r) => r.client) });
      log.warn('privacy-budgets-spent', { round, sites: played.budgetsSpent.refused.length });
      return { message };
    }
    const { record } = played;
    if (record.status === 'no-quorum' && attempt <= config.quorumRetries) {
      // The global model is unchanged; try the same round again with whoever is ready then.
      store?.appendEvent(runId, 'round-retry', { round, attempt, accepted: record.accepted, need: config.minFitClients });
      log.warn('round-retry', { round, attempt, of: config.quorumRetries });
      await o.onRound?.(record, snapshot(ctx, records, played.sites));
      attempt++;
      continue;
    }
    attempt = 1;
    commit(ctx, played);
    records.push(record);
    await o.onRound?.(record, snapshot(ctx, records, played.sites));
    if (record.status === 'no-quorum') {
      const budget = played.budgetRefusals > 0 ? ` (${played.budgetRefusals} selected sites refused it for their privacy budget)` : '';
      const secure = record.secureAggregation?.failure !== undefined ? ` (${record.secureAggregation.failure})` : '';
      throw new FtlError(
        ErrorCode.Quorum,
        `round ${round} got ${record.accepted} accepted updates${budget}${secure}, below minFitClients ${config.minFitClients}, ` +
          `after ${config.quorumRetries} retries; the run ends with the global model of round ${round - 1}`,
      );
    }
    if (o.early.observe(round, played.medians, model.weights)) break;
    round++;
  }
  return {};
}
