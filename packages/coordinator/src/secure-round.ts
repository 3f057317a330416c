/**
 * A round's training with secure aggregation (Bonawitz et al. 2017; SecAgg+ of Bell et al. 2020 with
 * `secureAggregation.neighbours`): the fit phase becomes four, each collected like any other with the
 * round's deadline, and the coordinator only ever holds their running sum of masked inputs.
 *
 * 0. advertise — the fit instruction carries each site's setup (id, neighbours, t) and quantisation; the
 *    site trains, then answers `secagg-advertise` with two fresh public keys and its training metrics;
 * 1. share — each site gets its neighbours' keys (`secagg-directory`) and answers with its secret shares
 *    sealed for each of them (`secagg-shares`);
 * 2. masked input — each site gets the shares sealed for it (`secagg-delivery`) and answers with its
 *    quantised change masked (`secagg-masked-input`);
 * 3. unmask — each site that sent one is told who dropped (`secagg-unmask`) and reveals its shares of the
 *    survivors' self-mask seeds and of the dropped sites' mask keys (`secagg-unmask-shares`).
 *
 * The state machine of every phase is `SecAggServer` (`@ftl/shared/secagg`); this file routes it over the
 * run's intake. A round where fewer than t holders answer for some site whose masks the sum needs fails as
 * a round without quorum would: the model stays, the reason is logged and stored.
 */
import {
  deriveSeed,
  ErrorCode,
  FtlError,
  isFtlError,
  type FitConfig,
  type Logger,
  PROTOCOL_VERSION,
  type ProtocolPayload,
  type SecAggAdvertise,
  type SecAggInstruction,
} from '@ftl/shared';
import {
  defaultThreshold,
  dequantizeSum,
  graphDegree,
  MAX_SECAGG_SITES,
  neighbourGraph,
  noiseShareStd,
  ringScale,
  SecAggServer,
} from '@ftl/shared/secagg';
import { clientDpOf, type ClientLevelPrivacy } from './client-dp.js';
import type { CoordinatorConfig } from './config.js';
import { type Collected, MAX_KEPT_REJECTIONS, type RoundCollector, type RoundTarget } from './round-collector.js';
import type { RoundRecord } from './round-table.js';
import { type RunContext, sendModel } from './run-context.js';
import { aggregateKept, type SecureAnswer, type SecureEvent } from './update-intake.js';
import { capCounts } from './update-screen.js';

/** The store event each secure-aggregation round appends: its summary, and why it failed if it did. */
export const SECURE_AGGREGATION_EVENT = 'secure-aggregation';

// Salt of the graph's seed: another stream than the round's selection and training seeds.
const GRAPH_SEED_SALT = 0x5ec466;

/** What a round of secure aggregation did, as its record and its event keep it. */
export interface SecureRoundSummary {
  /** Sites asked (the round's selection). */
  sites: number;
  /** Masked inputs in the sum. */
  maskedInputs: number;
  /** Selected sites that did not answer the last phase the round reached (dropped, failed or left out at any phase). */
  dropouts: number;
  /** t, of each site's `neighbours` + 1 share holders. */
  threshold: number;
  neighbours: number;
  /** Answers each phase accepted, in order: advertise, share, masked input, unmask. */
  answered: number[];
  /** Integers per unit of the sum. */
  scale: number;
  /** Why the round could not be summed; absent when it was. */
  failure?: string;
}

/** A round's secure fit: the survivors' phase-0 answers (metrics, privacy) for the record, and their sum. */
export interface SecureFit {
  /** Selection-ordered survivors' `secagg-advertise` answers; the failures and refusals of every phase. */
  collected: Collected<SecAggAdvertise>;
  summary: SecureRoundSummary;
  /** Σ weight·change of the survivors, dequantised, with the weights' sum and mean training loss; absent when the round failed. */
  sum?: { values: Float64Array; weight: number; loss: number; survivors: string[] };
}

const PHASE_VERBS = ['did not advertise keys', 'did not send shares', 'did not send a masked input', 'did not answer the unmasking'];
const PHASE_NAMES = ['advertise', 'share', 'masked-input', 'unmask'];

/**
 * Plays the fit of round `round` with secure aggregation: the four phases with the `selected` sites
 * (`configFor(i)` is the i-th site's training settings), then the sum of the survivors' changes.
 */
export async function secureFit(
  ctx: RunContext,
  round: number,
  selected: readonly string[],
  configFor: (i: number) => FitConfig,
): Promise<SecureFit> {
  const { config, model, log, host } = ctx;
  const sa = config.secureAggregation;
  const { runId } = config;
  const n = selected.length;
  const length = model.weights.values.length;
  const dp = clientDpOf(ctx);
  const summary: SecureRoundSummary = { sites: n, maskedInputs: 0, dropouts: n, threshold: 0, neighbours: 0, answered: [], scale: 0 };
  const all: Phase[] = [];
  const first = emptyCollected<SecAggAdvertise>();
  const done = (failure?: string, sum?: SecureFit['sum']): SecureFit => {
    if (failure !== undefined) summary.failure = failure;
    // Whoever did not answer the last phase the round reached did not see it through.
    summary.dropouts = n - (summary.answered.at(-1) ?? 0);
    return { collected: merged(first, all, selected, sum?.survivors ?? [], summary), summary, ...(sum ? { sum } : {}) };
  };
  if (n < 2) return done(`secure aggregation needs at least 2 sites in a round (${n} selected); a sum of one is that site's update`);

  const ids = selected.map((_, i) => i + 1);
  const clientOf = (id: number) => selected[id - 1]!;
  const idOf = new Map(selected.map((c, i) => [c, i + 1]));
  const degree = graphDegree(n, sa.neighbours ?? n - 1);
  const holders = degree + 1;
  const threshold = sa.threshold ?? defaultThreshold(holders);
  summary.neighbours = degree;
  summary.threshold = threshold;
  if (threshold > holders || threshold <= holders / 2) {
    return done(
      `secureAggregation.threshold ${threshold} does not fit this round's ${holders} holders of each site's shares (${n} sites); it must be a majority of them and at most all`,
    );
  }
  const graph = neighbourGraph(ids, sa.neighbours ?? n - 1, deriveSeed(config.seed, round, GRAPH_SEED_SALT));
  const server = new SecAggServer({ runId, round, graph, threshold, length });

  // Each site's weight: its declared training samples (capped as plain FedAvg caps them), or 1 with
  // client-level DP, whose mean is unweighted over the selected sites.
  const declared = selected.map((c) => Math.min(host.declaredCounts(runId, c)?.numTrain ?? 1, config.maxExamplesPerClient, config.sampleWeightCap));
  const weights = dp ? selected.map(() => 1) : capCounts(declared, ctx.trust.weightCap);
  const noiseStd =
    dp && dp.settings.noise === 'central'
      ? noiseShareStd({ noiseMultiplier: dp.settings.noiseMultiplier, clipNorm: dp.clipNorm }, threshold)
      : undefined;
  // Client-level DP bounds each change by S in L2 (so every value by S); a site's noise share widens that by
  // 8 standard deviations, beyond which a value is clipped with probability below 10⁻¹⁵.
  const clipRange = noiseStd !== undefined ? Math.max(sa.clipRange, dp!.clipNorm + 8 * noiseStd) : sa.clipRange;
  const scale = ringScale({ clipRange, totalWeight: weights.reduce((a, b) => a + b, 0), sites: n });
  summary.scale = scale;
  const instruction = (i: number): SecAggInstruction => ({
    ...server.setupFor(i + 1),
    clipRange,
    scale,
    weight: weights[i]!,
    rounding: sa.rounding,
  });

  const envelope = { protocol: PROTOCOL_VERSION, runId, round, modelVersion: model.version };
  const target = (clients: readonly string[]): RoundTarget => ({ runId, round, modelVersion: model.version, expected: clients });
  const quorum = (err: unknown): string => {
    if (isFtlError(err, ErrorCode.Quorum) || isFtlError(err, ErrorCode.InvalidMessage)) return err.message;
    throw err;
  };
  /** One phase: send each of `to` its message, collect `event` answers through `accept`. */
  const phase = async <E extends SecureEvent>(
    event: E,
    to: readonly string[],
    send: (collector: RoundCollector<SecureAnswer>) => void,
    accept: (id: number, message: ProtocolPayload<E>) => void,
  ): Promise<Collected<ProtocolPayload<E>>> => {
    const collected = await ctx.intake.collectSecure(event, target(to), config.roundDeadlineMs, send, (client, m) => accept(idOf.get(client)!, m));
    all.push({ expected: to, collected: collected as Collected<SecureAnswer> });
    summary.answered.push(collected.results.size);
    return collected;
  };
  const sendEach = <M>(
    collector: RoundCollector<SecureAnswer>,
    messages: Map<number, M>,
    event: 'secagg-directory' | 'secagg-delivery' | 'secagg-unmask',
  ) => {
    for (const [id, m] of messages) {
      // The maps' payloads are the phase messages' fields; the envelope makes them the events' payloads.
      if (!host.send(clientOf(id), event, { ...envelope, ...m } as never)) collector.fail(clientOf(id), 'disconnected before this phase');
    }
  };

  log.info('secure-aggregation-start', { sites: n, threshold, neighbours: degree, scale: Math.log2(scale) });
  // Phase 0: the fit instruction with each site's setup; training happens before the site answers.
  const advertised = await phase(
    'secagg-advertise',
    selected,
    (collector) =>
      sendModel(ctx, collector, 'fit', round, selected, 'disconnected before the round started', (i) => ({
        config: configFor(i),
        secureAggregation: instruction(i),
      })),
    (id, m) => {
      if (config.privacy.mode === 'record' && !m.privacy) {
        throw new FtlError(
          ErrorCode.InvalidMessage,
          `secagg-advertise.privacy is missing: run ${runId} trains with record-level DP, and every site reports its ε`,
        );
      }
      server.acceptKeys(id, m);
    },
  );
  for (const [client, m] of advertised.results) first.results.set(client, m);
  if (ctx.interrupted()) return done('interrupted by a shutdown');
  let directories: ReturnType<SecAggServer['closeAdvertise']>;
  try {
    directories = server.closeAdvertise();
  } catch (err) {
    return done(quorum(err));
  }
  // Phase 1: keys out, sealed shares in.
  await phase(
    'secagg-shares',
    [...directories.keys()].map(clientOf),
    (c) => sendEach(c, directories, 'secagg-directory'),
    (id, m) => server.acceptShares(id, m),
  );
  if (ctx.interrupted()) return done('interrupted by a shutdown');
  let deliveries: ReturnType<SecAggServer['closeShares']>;
  try {
    deliveries = server.closeShares();
  } catch (err) {
    return done(quorum(err));
  }
  // Phase 2: shares delivered, masked inputs in (added to the running sum as they come).
  await phase(
    'secagg-masked-input',
    [...deliveries.keys()].map(clientOf),
    (c) => sendEach(c, deliveries, 'secagg-delivery'),
    (id, m) => server.acceptMaskedInput(id, m),
  );
  if (ctx.interrupted()) return done('interrupted by a shutdown');
  let requests: ReturnType<SecAggServer['closeMaskedInput']>;
  try {
    requests = server.closeMaskedInput();
  } catch (err) {
    return done(quorum(err));
  }
  // Phase 3: who dropped out, and the shares that remove every mask of the survivors' sum.
  await phase(
    'secagg-unmask-shares',
    [...requests.keys()].map(clientOf),
    (c) => sendEach(c, requests, 'secagg-unmask'),
    (id, m) => server.acceptUnmaskShares(id, m),
  );
  if (ctx.interrupted()) return done('interrupted by a shutdown');
  let outcome: ReturnType<SecAggServer['finish']>;
  try {
    outcome = server.finish();
  } catch (err) {
    return done(quorum(err));
  }
  const survivors = outcome.survivors.map(clientOf);
  const weight = outcome.survivors.reduce((s, id) => s + weights[id - 1]!, 0);
  const loss = outcome.survivors.reduce((s, id) => s + weights[id - 1]! * (first.results.get(clientOf(id))?.metrics.loss ?? 0), 0) / weight;
  summary.maskedInputs = survivors.length;
  return done(undefined, { values: dequantizeSum(outcome.sum, scale), weight, loss, survivors });
}

/** One phase as the round's record reads it: whom it asked, and what it collected. */
interface Phase {
  expected: readonly string[];
  collected: Collected<SecureAnswer>;
}

function emptyCollected<R>(): Collected<R> {
  return { results: new Map(), failures: new Map(), rejected: [], rejectedCount: 0, timedOut: false };
}

/**
 * The round's collection as the record and the privacy event read it: the survivors' phase-0 answers, every
 * selected site that is not among them with why, and every phase's refusals.
 */
function merged(
  first: Collected<SecAggAdvertise>,
  phases: readonly Phase[],
  selected: readonly string[],
  survivors: readonly string[],
  summary: SecureRoundSummary,
): Collected<SecAggAdvertise> {
  const out = emptyCollected<SecAggAdvertise>();
  const kept = new Set(survivors);
  for (const client of selected) {
    const answer = first.results.get(client);
    if (kept.has(client) && answer) {
      out.results.set(client, answer);
      continue;
    }
    const at = phases.findIndex((p) => p.expected.includes(client) && !p.collected.results.has(client));
    const why = at >= 0 ? phases[at]!.collected.failures.get(client) : undefined;
    const left = phases.findIndex((p) => !p.expected.includes(client));
    const reason =
      at >= 0
        ? `${PHASE_VERBS[at]}${why ? ` (${why})` : ''}`
        : left >= 0
          ? `left out of the ${PHASE_NAMES[left]} phase: fewer than ${summary.threshold} of the sites holding its shares answered`
          : `the round could not be summed: ${summary.failure ?? 'no sum'}`;
    out.failures.set(client, reason);
  }
  for (const { collected: p } of phases) {
    out.rejected.push(...p.rejected.slice(0, Math.max(0, MAX_KEPT_REJECTIONS - out.rejected.length)));
    out.rejectedCount += p.rejectedCount;
    out.timedOut ||= p.timedOut;
  }
  return out;
}

/**
 * The aggregate of a secure round: the survivors' weighted mean change (or, with client-level DP, the
 * sites' noised sum over the selected count) applied to the global model as one update through the
 * strategy's step, which for FedAvg is the new model itself and for FedAvgM or FedAdam a server step on it.
 */
export function aggregateSecure(
  ctx: RunContext,
  round: number,
  secured: SecureFit,
  log: Logger,
  selection: { selected: number; ready: number },
): { status: 'aggregated' | 'no-quorum' | 'kept'; trainLoss: number; participants: string[]; excluded: number; clientPrivacy?: ClientLevelPrivacy } {
  const { model, config, store } = ctx;
  const { summary, sum } = secured;
  store?.appendEvent(config.runId, SECURE_AGGREGATION_EVENT, { round, ...summary });
  if (!sum || sum.survivors.length < config.minFitClients) {
    const reason = summary.failure ?? `${sum?.survivors.length ?? 0} masked inputs were summed, below minFitClients ${config.minFitClients}`;
    log.warn('secure-aggregation-failed', { reason });
    return { status: 'no-quorum', trainLoss: NaN, participants: sum?.survivors ?? [], excluded: 0 };
  }
  const global = model.weights.values;
  const dp = clientDpOf(ctx);
  let update: { clientId: string; values: Float32Array; numExamples: number; loss: number };
  let clientPrivacy: ClientLevelPrivacy | undefined;
  if (dp) {
    const released = dp.releaseSum(
      global,
      sum.values,
      sum.survivors.length,
      sum.loss,
      Math.max(selection.selected, sum.survivors.length),
      Math.max(selection.ready, selection.selected),
    );
    update = released.mean;
    clientPrivacy = released.privacy;
  } else {
    const values = new Float32Array(global.length);
    for (let i = 0; i < values.length; i++) values[i] = global[i]! + sum.values[i]! / sum.weight;
    update = { clientId: 'secure-sum', values, numExamples: sum.weight, loss: sum.loss };
  }
  const next = aggregateKept(ctx.strategy, round, global, [update], log);
  let status: 'aggregated' | 'kept' = 'aggregated';
  if (next === null) status = 'kept';
  else {
    model.weights = { specs: model.weights.specs, values: next };
    model.version++;
  }
  log.info('secure-aggregation-end', { maskedInputs: summary.maskedInputs, dropouts: summary.dropouts });
  return { status, trainLoss: sum.loss, participants: sum.survivors, excluded: 0, ...(clientPrivacy ? { clientPrivacy } : {}) };
}

/** What the round's record keeps of its secure aggregation. */
export function secureRecord(s: SecureRoundSummary): NonNullable<RoundRecord['secureAggregation']> {
  return {
    maskedInputs: s.maskedInputs,
    dropouts: s.dropouts,
    threshold: s.threshold,
    neighbours: s.neighbours,
    ...(s.failure !== undefined ? { failure: s.failure } : {}),
  };
}

/**
 * The largest message of a secure-aggregation phase, besides the masked input (the size of an update): a
 * key directory or a set of sealed shares for every neighbour, about 250 bytes each on the wire.
 */
export function secureAggregationMessageBytes(config: Pick<CoordinatorConfig, 'secureAggregation'>): number {
  const sa = config.secureAggregation;
  return sa.enabled ? 256 * (sa.neighbours ?? MAX_SECAGG_SITES) + 64 * 1024 : 0;
}
