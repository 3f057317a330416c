/**
 * Update intake: the path every answer of a site takes into a run, in order.
 *
 * 1. parse — `parse*` from the protocol turns the `unknown` frame into a typed message (structure only);
 * 2. round checks — the open {@link RoundCollector} checks run, round, model version, selection,
 *    duplicates and deadline;
 * 3. content checks — against the run: tensor names and shapes, finiteness, sample counts within what
 *    the site declared at `ready`, the privacy a site in a run with record-level DP reports (here,
 *    `checkUpdate`, `checkClaim` and `checkPrivacy`);
 * 4. the round closes; its accepted updates pass the trust screen (`update-screen.ts`) and only then
 *    reach the strategy ({@link screenRound}, {@link aggregateKept}).
 *
 * Nothing before step 4 touches the aggregate: checking an update keeps it with its round, no more.
 */
import {
  assertSameSpecs,
  decodeWeights,
  ErrorCode,
  firstNonFinite,
  FtlError,
  parseClassSumsResult,
  parseClientFailure,
  parseEvaluateResult,
  parseFitResult,
  parsePayload,
  parsePersonalizeResult,
  rejectionFor,
  type Ack,
  type ClassSumsResult,
  type Envelope,
  type EvaluateResult,
  type FitResult,
  type HeadConfig,
  type Logger,
  type PersonalizeResult,
  type PrivacyReport,
  type ProtocolPayload,
  type RoundAggregator,
  type Strategy,
  type WeightSpec,
} from '@ftl/shared';
import { checkClassSums, type SiteClassSums } from './class-means.js';
import { checkClientClip } from './client-dp.js';
import type { CoordinatorConfig } from './config.js';
import type { ResolvedHeadInit } from './run-config.js';
import { RoundCollector, type Collected, type RoundTarget } from './round-collector.js';
import type { RunHost } from './run-host.js';
import { screenUpdates, type Exclusion, type ScreenedUpdate, type TrustPolicy } from './update-screen.js';

/** A fit update that passed every check, kept for aggregation. */
export interface AcceptedUpdate {
  values: Float32Array;
  numExamples: number;
  loss: number;
}

/** What each kind of collection keeps of an accepted answer. */
export interface StageAnswer {
  fit: FitResult & { decoded: AcceptedUpdate };
  evaluate: EvaluateResult;
  personalize: PersonalizeResult;
  'class-sums': ClassSumsResult & { decoded: SiteClassSums };
  /** A phase of secure aggregation (secure-round.ts): the answer as that phase's check accepted it. */
  'secure-aggregation': SecureAnswer;
}

/** The events a site answers secure aggregation's phases with, in order. */
export const SECURE_AGGREGATION_EVENTS = ['secagg-advertise', 'secagg-shares', 'secagg-masked-input', 'secagg-unmask-shares'] as const;
/** One of {@link SECURE_AGGREGATION_EVENTS}. */
export type SecureEvent = (typeof SECURE_AGGREGATION_EVENTS)[number];
/** A site's answer to a phase of secure aggregation, parsed. */
export type SecureAnswer = ProtocolPayload<SecureEvent>;

/** A kind of answer a run collects: a round's fit and evaluation, the class sums before round 1, personalization after the last. */
export type Stage = keyof StageAnswer;

/** What the intake needs from its run. */
export interface IntakeContext {
  readonly config: CoordinatorConfig;
  readonly head: HeadConfig;
  readonly host: RunHost;
  readonly log: Logger;
  readonly trust: TrustPolicy;
  /** How the run's head starts (`auto` resolved): the discriminant also asks for each site's scatter. */
  readonly headInit: ResolvedHeadInit;
  /** The specs of the global model now: what an update must match. */
  globalSpecs(): readonly WeightSpec[];
}

/** What the run sees of an open collection, whatever it collects. */
export type OpenCollection = Pick<RoundCollector<Envelope>, 'answered' | 'target' | 'fail' | 'close'>;

/** Refusals about when or where an answer arrived, not what it held. */
const TIMING_REFUSALS: ReadonlySet<string> = new Set(['unknown-run', 'stale-round', 'stale-model', 'not-selected', 'duplicate', 'round-closed']);

/** The refusals of a collection that concern an answer's contents (timing refusals are not trust decisions). */
export function contentRefusals<R>(collected: Collected<R>): Refusal[] {
  return refusals(collected).filter((r) => !TIMING_REFUSALS.has(r.reason));
}

/** A selected site that said it would not do a stage for its privacy budget (`failure` with reason `privacy-budget`). */
export interface BudgetRefusal {
  clientId: string;
  message: string;
  /** What the site had spent when it refused, if it said. */
  privacy?: PrivacyReport;
}

/** A refused answer: who sent it, the reason and message of its acknowledgement. */
export interface Refusal {
  clientId: string;
  reason: string;
  message: string;
}

/** Every refusal a collection kept, in arrival order. */
export function refusals<R>(collected: Collected<R>): Refusal[] {
  return collected.rejected.map((r) => ({ clientId: r.clientId, reason: r.ack.reason, message: r.ack.message }));
}

/**
 * The open collections of one run and the checks every answer passes before one keeps it. At most one
 * collection per {@link Stage} is open; an answer with none open is refused as `round-closed`.
 *
 * @example
 * const collected = await intake.collect('fit', target, deadlineMs, (c) => send(c));
 * const screen = screenRound(global, collected, trust, reference);
 */
export class UpdateIntake {
  private readonly open: { [S in Stage]?: RoundCollector<StageAnswer[S]> } = {};
  /** Per stage, the budget refusals of its latest collection, by client, and the clients it asked in selection order. */
  private readonly budgetRefused: { [S in Stage]?: { expected: readonly string[]; sites: Map<string, BudgetRefusal> } } = {};
  /** The open phase of secure aggregation: the event it takes and its check. */
  private securePhase?: { event: SecureEvent; accept: (clientId: string, message: SecureAnswer) => void };

  constructor(private readonly ctx: IntakeContext) {}

  /**
   * Opens the `stage` collection for `target`, lets `ask` send the requests (and fail the clients it
   * cannot reach), and resolves with what the collection kept once it settles; then it is closed.
   */
  async collect<S extends Stage>(
    stage: S,
    target: RoundTarget,
    deadlineMs: number,
    ask: (collector: RoundCollector<StageAnswer[S]>) => void,
  ): Promise<Collected<StageAnswer[S]>> {
    const collector = new RoundCollector<StageAnswer[S]>(target, deadlineMs);
    (this.open as Record<S, RoundCollector<StageAnswer[S]>>)[stage] = collector;
    this.budgetRefused[stage] = { expected: target.expected, sites: new Map() };
    ask(collector);
    try {
      return await collector.settled;
    } finally {
      if (this.open[stage] === collector) delete this.open[stage];
    }
  }

  /**
   * The sites of `collected` (the latest `stage` collection) that were counted out because they refused
   * for their privacy budget, in selection order.
   */
  budgetRefusals<S extends Stage>(stage: S, collected: Collected<StageAnswer[S]>): BudgetRefusal[] {
    const refused = this.budgetRefused[stage];
    if (!refused) return [];
    return refused.expected.flatMap((id) => (collected.failures.has(id) ? (refused.sites.get(id) ?? []) : []));
  }

  /** The open collection of `stage`, if any (progress displays). */
  collector(stage: Stage): OpenCollection | undefined {
    return this.open[stage];
  }

  /**
   * Opens the collection of one phase of secure aggregation: like {@link collect}, for answers of `event`
   * only, each checked by `accept` (the coordinator's state machine) before it is acknowledged.
   */
  async collectSecure<E extends SecureEvent>(
    event: E,
    target: RoundTarget,
    deadlineMs: number,
    ask: (collector: RoundCollector<SecureAnswer>) => void,
    accept: (clientId: string, message: ProtocolPayload<E>) => void,
  ): Promise<Collected<ProtocolPayload<E>>> {
    // `submitSecure` parses an answer by the event this phase takes, so what `accept` gets is that event's payload.
    this.securePhase = { event, accept: accept as (clientId: string, message: SecureAnswer) => void };
    // A site refuses a round for its budget before it trains, in phase 0: later phases keep those refusals.
    const earlier = event === 'secagg-advertise' ? undefined : this.budgetRefused['secure-aggregation'];
    try {
      return (await this.collect('secure-aggregation', target, deadlineMs, ask)) as Collected<ProtocolPayload<E>>;
    } finally {
      this.securePhase = undefined;
      if (earlier) this.budgetRefused['secure-aggregation'] = earlier;
    }
  }

  /** A site's answer to a phase of secure aggregation: parsed, checked against the open round and by the phase. */
  submitSecure(event: SecureEvent, clientId: string, raw: unknown): Ack {
    const phase = this.securePhase;
    if (phase?.event !== event) return { accepted: false, reason: 'round-closed', message: `no secure-aggregation phase takes ${event} now` };
    const answer = this.answer(
      clientId,
      raw,
      'secure-aggregation',
      (v) => parsePayload(event, v),
      (msg) => {
        phase.accept(clientId, msg);
        return msg;
      },
    );
    if (!answer.accepted)
      this.ctx.log.warn('secure-aggregation-rejected', { client: clientId, event, reason: answer.reason, detail: answer.message });
    return answer;
  }

  /** A client's fit update: parsed, checked against the open round, then against the global model. */
  submitFit(clientId: string, raw: unknown): Ack {
    const answer = this.answer(clientId, raw, 'fit', parseFitResult, (msg) => ({ ...msg, decoded: this.checkUpdate(clientId, msg) }));
    if (!answer.accepted) this.ctx.log.warn('update-rejected', { client: clientId, reason: answer.reason, detail: answer.message });
    return answer;
  }

  /** A client's evaluation of the current global head. */
  submitEvaluate(clientId: string, raw: unknown): Ack {
    const answer = this.answer(clientId, raw, 'evaluate', parseEvaluateResult, (msg) => {
      this.checkClaim(clientId, msg.numExamples, 'numVal');
      return msg;
    });
    if (!answer.accepted) this.ctx.log.warn('evaluation-rejected', { client: clientId, reason: answer.reason, detail: answer.message });
    return answer;
  }

  /** A client's personalization report. */
  submitPersonalize(clientId: string, raw: unknown): Ack {
    return this.answer(clientId, raw, 'personalize', parsePersonalizeResult, (msg) => msg);
  }

  /** A site's per-class feature sums and counts: checked against the run and what the site declared. */
  submitClassSums(clientId: string, raw: unknown): Ack {
    const { config, head, host, trust, headInit } = this.ctx;
    const answer = this.answer(clientId, raw, 'class-sums', parseClassSumsResult, (msg) => ({
      ...msg,
      decoded: checkClassSums(msg, head, host.declaredCounts(config.runId, clientId)?.numTrain, trust.maxAbsValue, headInit === 'discriminant'),
    }));
    if (!answer.accepted) this.ctx.log.warn('class-sums-rejected', { client: clientId, reason: answer.reason, detail: answer.message });
    return answer;
  }

  /** A client reported that it could not do what a round asked: the round stops waiting for it. */
  clientFailed(clientId: string, raw: unknown): void {
    try {
      const f = parseClientFailure(raw);
      const budget = f.reason === 'privacy-budget';
      this.ctx.log.warn(budget ? 'client-privacy-budget' : 'client-failure', { client: clientId, stage: f.stage, round: f.round, detail: f.message });
      // A secure-aggregation round is the fit stage for a site: its failures end its part in the open phase.
      const fit: Stage = this.open['secure-aggregation'] ? 'secure-aggregation' : 'fit';
      const stage: Stage = f.stage === 'fit' ? fit : f.stage === 'evaluate' || f.stage === 'class-sums' ? f.stage : 'personalize';
      const round = this.open[stage];
      if (!round || round.target.round !== f.round) return;
      if (budget && round.target.expected.includes(clientId)) {
        this.budgetRefused[stage]?.sites.set(clientId, { clientId, message: f.message, ...(f.privacy ? { privacy: f.privacy } : {}) });
      }
      round.fail(clientId, `${budget ? 'refused for its privacy budget' : 'client failed'}: ${f.message}`);
    } catch (err) {
      this.ctx.log.warn('malformed-failure', { client: clientId, detail: (err as Error).message });
    }
  }

  /** A client disconnected: no open collection waits for it any longer. */
  clientLeft(clientId: string, why: string): void {
    for (const round of this.all()) round.fail(clientId, why);
  }

  /** Closes every open collection now (a shutdown). */
  closeAll(): void {
    for (const round of this.all()) round.close();
  }

  private all(): OpenCollection[] {
    return (['fit', 'evaluate', 'personalize', 'class-sums', 'secure-aggregation'] as const).flatMap((s) => this.open[s] ?? []);
  }

  /**
   * Parses a submission and hands it to the open collection of `stage`, which checks it against the round
   * and runs `accept` (the content checks); every failure becomes a rejection recorded in that round.
   * Never acknowledges before checking.
   */
  private answer<S extends Stage, M extends Envelope>(
    clientId: string,
    raw: unknown,
    stage: S,
    parse: (v: unknown) => M,
    accept: (m: M) => StageAnswer[S],
  ): Ack {
    const round = this.open[stage] as RoundCollector<StageAnswer[S]> | undefined;
    if (!round) return { accepted: false, reason: 'round-closed', message: 'no round is open for this message' };
    try {
      const msg = parse(raw);
      return round.submit(clientId, msg, () => accept(msg));
    } catch (err) {
      return round.reject(clientId, rejectionFor(err));
    }
  }

  /** A sample count a site claims may not exceed what it declared at `ready` (nor the run's cap). */
  private checkClaim(clientId: string, claimed: number, field: 'numTrain' | 'numVal'): void {
    const declared = this.ctx.host.declaredCounts(this.ctx.config.runId, clientId)?.[field];
    if (declared !== undefined && claimed > declared) {
      throw new FtlError(
        ErrorCode.SampleCount,
        `numExamples ${claimed} is more than the ${declared} ${field === 'numTrain' ? 'training' : 'validation'} samples this site declared at ready`,
      );
    }
  }

  /**
   * In a run with record-level DP every update reports what its site has spent, at the run's δ: the
   * schema has checked the numbers (ε finite and ≥ 0); this checks that the report is there and answers
   * the run's question. The coordinator cannot verify the noise; the report is the site's own account.
   */
  private checkPrivacy(privacy: PrivacyReport | undefined): void {
    const run = this.ctx.config.privacy;
    if (run.mode !== 'record') return;
    if (!privacy) {
      throw new FtlError(
        ErrorCode.InvalidMessage,
        `fit-result.privacy is missing: run ${this.ctx.config.runId} trains with record-level DP, and every update reports the ε its site has spent ({epsilon, delta})`,
      );
    }
    if (privacy.delta !== run.delta) {
      throw new FtlError(
        ErrorCode.InvalidMessage,
        `fit-result.privacy.delta is ${privacy.delta.toExponential()} but this run reports ε at δ ${run.delta.toExponential()}; report at the δ the round's config names`,
      );
    }
  }

  /** Content checks of an update against the global model: tensor names, shapes, byte length, finiteness, claims. */
  private checkUpdate(clientId: string, msg: FitResult): AcceptedUpdate {
    const weights = decodeWeights(msg.weights);
    assertSameSpecs(weights.specs, this.ctx.globalSpecs() as WeightSpec[]);
    const bad = firstNonFinite(weights.values);
    if (bad >= 0) {
      throw new FtlError(ErrorCode.NonFiniteWeights, `value ${bad} of the update is ${weights.values[bad]}; updates must be finite`);
    }
    const cap = this.ctx.config.maxExamplesPerClient;
    if (msg.numExamples > cap) {
      throw new FtlError(ErrorCode.SampleCount, `numExamples ${msg.numExamples} exceeds the cap of ${cap} per client`);
    }
    this.checkClaim(clientId, msg.numExamples, 'numTrain');
    this.checkPrivacy(msg.privacy);
    checkClientClip(this.ctx.config, msg);
    // Kept until the round closes: the trust policy compares each update with the round's others.
    return { values: weights.values, numExamples: msg.numExamples, loss: msg.metrics.loss };
  }
}

/** Step 4a: the round's accepted updates through the trust screen (outliers, extreme values, capped weights). */
export function screenRound(
  global: Float32Array,
  collected: Collected<StageAnswer['fit']>,
  trust: TrustPolicy,
  reference: number | undefined,
): { kept: ScreenedUpdate[]; excluded: Exclusion[]; reference?: number } {
  const accepted = [...collected.results.entries()].map(([clientId, r]) => ({ clientId, ...r.decoded }));
  return screenUpdates(global, accepted, trust, reference);
}

/**
 * Step 4b: the strategy's aggregate of the updates the screen kept, or null to keep the previous global
 * model: when the rule has none (too few updates for it), fails, or gives a value that is not finite.
 */
export function aggregateKept(
  strategy: Strategy,
  round: number,
  global: Float32Array,
  kept: readonly ScreenedUpdate[],
  log: Logger,
): Float32Array | null {
  let next: Float32Array | null;
  try {
    const aggregator: RoundAggregator = strategy.beginAggregation(round, global);
    for (const u of kept) aggregator.add(u);
    next = aggregator.finish();
  } catch (err) {
    log.warn('aggregate-kept-previous', { strategy: strategy.name, why: (err as Error).message });
    return null;
  }
  const bad = next ? firstNonFinite(next) : -1;
  if (next === null || bad >= 0) {
    const why = next === null ? `no aggregate (${kept.length} updates; ${strategy.name} needs ${strategy.minUpdates})` : `value ${bad} is not finite`;
    log.warn('aggregate-kept-previous', { strategy: strategy.name, why });
    return null;
  }
  return next;
}
