import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  backboneLayersOf, carryOver, createHead, createStrategy, createTrainableNetwork, decodeWeights, DEFAULT_FINE_TUNING, deriveSeed, encodeWeights, ErrorCode,
  firstNonFinite, FtlError, getTrainableWeights, parseClientFailure, planFineTuning, remapStrategyState, unfrozenLayerCount, parseEvaluateResult, parseFitResult, parsePersonalizeResult, PROTOCOL_VERSION,
  rejectionFor, specsSize, assertSameSpecs, combineStats, checkChannelStats, parseClassSumsResult, type ClassSumsResult,
  type Ack, type ChannelStats, type Normalization, type ByteCounter, type Envelope, type EvaluateResult, type FitResult, type HeadConfig, type Logger,
  type LayersFeatureExtractor, type PersonalizeResult, type RoundAggregator, type RunEndReason, type ServerToClientEvents, type Strategy,
  type WeightSpec, type Weights, type Welcome,
} from '@ftl/shared';
import { BACKBONE_PATH, type ServedBackbone } from './backbone-server.js';
import { assertHeadInit, checkClassSums, classMeansHead, classSumsMessageBytes, discriminantHeadOf, HEAD_INIT_EVENT, outputLayerOf, withRecordedOutputLayer, type SiteClassSums } from './class-means.js';
import { toRunConfig, type CoordinatorConfig } from './config.js';
import { exportGlobalModel } from './export-model.js';
import { stagingDir, swapInExport } from './export-swap.js';
import { RoundCollector } from './round-collector.js';
import { MODEL_EXPORTED_EVENT } from './run-reuse.js';
import { capCounts, DEFAULT_TRUST, screenUpdates } from './update-screen.js';
import type { RoundRecord } from './round-table.js';
import type { Store } from './store/store.js';

/** The round's local training settings: the learning rate decayed per round, epochs from the schedule. */
export function scheduledFit(fit: CoordinatorConfig['fit'], schedule: CoordinatorConfig['schedule'], round: number): CoordinatorConfig['fit'] {
  const epochs = schedule.epochs.filter((s) => s.fromRound <= round).at(-1)?.epochs ?? fit.epochs;
  return { ...fit, epochs, learningRate: fit.learningRate * schedule.lrDecay ** (round - 1) };
}

/**
 * Writes a run's global model (backbone + head) as a TensorFlow.js folder with its description
 * (`ftl-model.json`); returns the model's digest.
 */
export async function exportRunModel(o: {
  backbone: ServedBackbone; config: CoordinatorConfig; head: HeadConfig; weights: Weights; dir: string;
  modelVersion: number; rounds: RoundRecord[]; bestRound?: number;
  /** The run's federated input normalisation: a layers export applies it itself, a graph export records it. */
  normalization?: Normalization;
}): Promise<{ digest: string; outcome: 'replaced' | 'kept' }> {
  const { config } = o;
  const featureLayer = config.featureLayer ?? o.backbone.featureLayer;
  // Written beside the target and renamed into place: a crash never leaves half a model in `dir`, and a
  // more trained export of the same run already there is kept.
  const staging = stagingDir(o.dir);
  const { digest } = await exportGlobalModel({
    backbone: o.backbone, featureLayer, head: o.head, weights: o.weights, dir: staging, localLayers: config.localLayers,
    ...(o.normalization ? { inputNormalization: o.normalization } : {}),
    meta: {
      runId: config.runId, classes: config.classes, backboneSha256: o.backbone.sha256, featureLayer, strategy: config.strategy,
      localLayers: config.localLayers, modelVersion: o.modelVersion, rounds: o.rounds, ...(o.bestRound !== undefined ? { bestRound: o.bestRound } : {}),
      ...(config.fineTuning.mode !== 'feature-extraction' ? { fineTuning: config.fineTuning, trainedBackboneLayers: backboneLayersOf(o.weights.specs) } : {}),
    },
  }).catch(async (err: unknown) => {
    await rm(staging, { recursive: true, force: true });
    throw err;
  });
  const outcome = await swapInExport(staging, o.dir, { runId: config.runId, modelVersion: o.modelVersion });
  return { digest, outcome };
}

/** What a run needs from the server that hosts it: the connected clients and a way to reach them. */
export interface RunHost {
  /** Bytes through the socket.io parser, for per-round traffic figures. */
  readonly bytes: ByteCounter;
  /** Connected clients that said they are ready for `runId`, sorted. */
  readyClients(runId: string): string[];
  /** Sends one event to one client; false when it is not connected. */
  send<E extends keyof ServerToClientEvents>(clientId: string, event: E, message: Parameters<ServerToClientEvents[E]>[0]): boolean;
  /** Sends one event to every connected client. */
  broadcast<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): void;
  /** The channel statistics ready clients of `runId` reported (federated normalisation). */
  readyStats(runId: string): Array<{ clientId: string; stats: ChannelStats }>;
  /** Calls `listener` whenever a client becomes ready; returns the unsubscribe function. */
  onClientReady(listener: () => void): () => void;
  /** The sample counts a ready client of `runId` declared: what its updates and evaluations may claim at most. */
  declaredCounts(runId: string, clientId: string): { numTrain: number; numVal: number } | undefined;
}

/** One client's post-training personalization report. */
export interface PersonalizationRecord {
  clientId: string;
  numExamples: number;
  globalAccuracy: number;
  personalAccuracy: number;
}

/** How a run's `run()` ended: a protocol end reason, or `paused` (the run can be resumed later). */
export type RunOutcome = RunEndReason | 'paused';

/** What a finished (or paused) run returns. */
export interface RunSummary {
  runId: string;
  reason: RunOutcome;
  rounds: RoundRecord[];
  weights: Weights;
  modelVersion: number;
  exportDir?: string;
  /** Present when `personalizeEpochs` > 0. */
  personalization?: PersonalizationRecord[];
  /** With early stopping: the round whose global head `weights` (and the export) holds. */
  bestRound?: number;
}

/** Where a running run stands, for progress displays. */
export interface RunProgress {
  runId: string;
  phase: 'waiting-for-clients' | 'class-means' | 'fit' | 'evaluate' | 'personalize' | 'finishing' | 'idle';
  /** The round in progress (0 before the first). */
  round: number;
  rounds: number;
  /** Answers received / expected in the current phase. */
  received: number;
  expected: number;
  readyClients: number;
  minClients: number;
}

/** A fit update that passed every check, kept for aggregation. */
interface AcceptedUpdate {
  values: Float32Array;
  numExamples: number;
  loss: number;
}

/** How one round ended: recorded (to commit), or cut short by a shutdown (nothing to commit). */
type RoundOutcome =
  | { interrupted: true }
  | {
      interrupted?: false; record: RoundRecord; participants: string[];
      /** The median of the sites' validation losses: what early stopping decides on. */
      medianValLoss: number;
      medianValAccuracy: number;
      rejected: Array<{ clientId: string; reason: string; message: string }>;
    };

/**
 * One federated run: waits for clients, trains rounds with its strategy, evaluates each new global head
 * on the clients, checkpoints every round in the store and exports the global model. It owns no sockets:
 * the {@link RunHost} (the coordinator server) routes clients' messages to it and carries its own.
 * A store makes it resumable: a run already in the store continues after its newest valid checkpoint.
 */
export class FederatedRun {
  private fitRound?: RoundCollector<FitResult & { decoded: AcceptedUpdate }>;
  private evalRound?: RoundCollector<EvaluateResult>;
  private personalizeRound?: RoundCollector<PersonalizeResult>;
  /** The class-sums phase before round 1 (`headInit: "class-means"`), while it collects. */
  private classSumsRound?: RoundCollector<ClassSumsResult & { decoded: SiteClassSums }>;
  private readonly strategy: Strategy;
  /** The last round's median distance of updates from the global model: the reference of a round with one update. */
  private moveReference?: number;
  /** Events recorded before the run existed in the store (a site refused at ready), written when it is created. */
  private readonly unstoredEvents: Array<{ type: string; data: Record<string, unknown> }> = [];
  private global: Weights;
  private modelVersion = 0;
  private stopRequest?: 'stop' | 'pause' | 'interrupt';
  /** Federated input normalisation, fixed before the first round (runs with `normalization` ≠ none). */
  private normalization?: Normalization;
  private wake?: () => void;
  private current: Pick<RunProgress, 'phase' | 'round'> = { phase: 'idle', round: 0 };
  private readonly log: Logger;
  /** The backbone cut at the run's feature layer, when the run trains backbone layers (a layers model). */
  private readonly cut?: LayersFeatureExtractor;
  /** The initial trainable tensors per number of unfrozen backbone layers: the pretrained layers + the seeded head. */
  private readonly initial = new Map<number, Weights>();
  /** The largest trainable set of the run (its last round's): what sizes the message limit. */
  private readonly largest: Weights;

  constructor(
    readonly config: CoordinatorConfig,
    private readonly backbone: ServedBackbone,
    readonly head: HeadConfig,
    private readonly host: RunHost,
    log: Logger,
    /** Where the run, its rounds and checkpoints persist; without one the run lives in memory only. */
    private readonly store?: Store,
  ) {
    this.log = log.child({ run: config.runId });
    assertHeadInit(config, head);
    const initial = createHead(head, config.seed);
    const layers = initial.layers.map((l) => l.name);
    const unknown = config.localLayers.filter((l) => !layers.includes(l));
    if (unknown.length > 0 || config.localLayers.length >= layers.length) {
      initial.dispose();
      throw new FtlError(ErrorCode.InvalidConfig, `localLayers must name some but not all head layers (${layers.join(', ')}); got ${config.localLayers.join(', ')}`);
    }
    this.global = getTrainableWeights(initial, config.localLayers);
    initial.dispose();
    this.initial.set(0, this.global);
    const ft = config.fineTuning;
    if (ft.mode !== 'feature-extraction') {
      if (config.localLayers.length > 0) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `localLayers (${config.localLayers.join(', ')}) work only with fineTuning.mode "feature-extraction" (got "${ft.mode}"); ` +
            'drop localLayers, or fine-tune the backbone without personal head layers',
        );
      }
      // Scratch trains every layer below the cut, so a layer count would be silently ignored: refused instead.
      if (ft.mode === 'scratch' && ft.layers !== DEFAULT_FINE_TUNING.layers) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `fineTuning.layers is ${ft.layers} but mode "scratch" re-initialises and trains every backbone layer below the cut; ` +
            'leave fineTuning.layers out, or use mode "partial" to train only the top layers from their pretrained values',
        );
      }
      const fx = backbone.extractor.at(config.featureLayer ?? backbone.featureLayer);
      if (fx.kind !== 'layers') {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          ft.mode === 'scratch'
            ? `fineTuning.mode "scratch" re-initialises the backbone's layers, but the backbone ${backbone.dir} is a graph model, whose ` +
              'layers cannot be re-initialised; use a TensorFlow.js layers-model backbone of the same architecture'
            : `fineTuning.mode "${ft.mode}" trains backbone layers, but the backbone ${backbone.dir} is a graph model, a frozen feature ` +
              'extractor; use fineTuning.mode "feature-extraction" or a TensorFlow.js layers-model backbone',
        );
      }
      this.cut = fx;
      // Refuses a cap the backbone cannot meet, even one the rounds never reach (scratch: a backbone with nothing to train).
      planFineTuning(fx, ft.mode === 'scratch' ? unfrozenLayerCount(ft, 1) : ft.layers);
    }
    this.global = this.initialWeights(unfrozenLayerCount(ft, 1));
    this.largest = this.initialWeights(unfrozenLayerCount(ft, config.rounds));
    this.strategy = createStrategy(config.strategy, {
      fractionFit: config.fractionFit, minFitClients: config.minFitClients, sampleWeightCap: config.sampleWeightCap, seed: config.seed,
    });
    const needed = this.strategy.minUpdates;
    if (config.minClients < needed) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `strategy ${this.strategy.name} needs at least ${needed} updates in a round to aggregate, but minClients is ${config.minClients}, ` +
          `so a round could start with too few; raise minClients to ${needed} or more, or lower the strategy's f`,
      );
    }
  }

  /** The run's trust policy (defaults unless the config sets one). */
  private get trust() {
    return this.config.trust ?? DEFAULT_TRUST;
  }

  get runId(): string {
    return this.config.runId;
  }

  /**
   * Bytes of the largest update of the run (head plus the most unfrozen backbone layers it ever trains)
   * plus envelope: the largest message a client needs to send.
   */
  maxMessageBytes(): number {
    return Math.max(specsSize(this.largest.specs) * 4 * 2 + 64 * 1024, classSumsMessageBytes(this.config.headInit, this.head));
  }

  /**
   * The initial trainable tensors with `count` unfrozen backbone layers before the seeded head: pretrained,
   * or (scratch) drawn from the layers' own initialisers, seeded by the run's seed.
   */
  private initialWeights(count: number): Weights {
    let w = this.initial.get(count);
    if (w === undefined) {
      const backbone = this.config.fineTuning.mode === 'scratch' ? 'random' : 'pretrained';
      const net = createTrainableNetwork(this.cut!, count, this.head, this.config.seed, { backbone });
      w = getTrainableWeights(net.model);
      net.model.dispose();
      this.initial.set(count, w);
    }
    return w;
  }

  /**
   * Sets the trainable set `round` trains (gradual unfreezing changes it): tensors the global model has
   * keep their values, newly unfrozen layers start from the pretrained backbone, and the strategy's
   * per-value server state (momentum, Adam moments) is carried by name, with zeros for the new tensors.
   */
  private enterRound(round: number): void {
    const fresh = this.initialWeights(unfrozenLayerCount(this.config.fineTuning, round));
    if (sameSpecs(fresh.specs, this.global.specs)) return;
    const before = this.global.specs;
    this.global = carryOver(this.global, fresh);
    this.strategy.restore(remapStrategyState(this.strategy.state(), before, fresh.specs));
    // Distances over another set of tensors are not comparable with the last round's.
    this.moveReference = undefined;
    const layers = backboneLayersOf(fresh.specs);
    this.log.info('unfreeze', { round, layers: layers.join(','), values: this.global.values.length });
    this.store?.appendEvent(this.config.runId, 'unfreeze', { round, layers, values: this.global.values.length });
  }

  /** What a client receives on joining this run. */
  welcome(clientId: string): Welcome {
    return {
      protocol: PROTOCOL_VERSION,
      runId: this.config.runId,
      clientId,
      backbone: {
        path: BACKBONE_PATH,
        files: this.backbone.files.map((f) => f.name),
        sha256: this.backbone.sha256,
        featureLayer: this.config.featureLayer ?? this.backbone.featureLayer,
      },
      head: this.head,
      classes: [...this.config.classes],
      localLayers: [...this.config.localLayers],
      ...(this.config.augment.copies > 0 ? { augment: { ...this.config.augment } } : {}),
      ...(this.config.normalization !== 'none' ? { normalization: this.config.normalization, normalizationScope: this.config.normalizationScope } : {}),
      ...(unfrozenLayerCount(this.config.fineTuning, 1) > 0 ? { backboneTrainsFromStart: true } : {}),
    };
  }

  /** Where the run stands now. */
  progress(): RunProgress {
    const collector = this.current.phase === 'fit' ? this.fitRound : this.current.phase === 'evaluate' ? this.evalRound
      : this.current.phase === 'personalize' ? this.personalizeRound : this.current.phase === 'class-means' ? this.classSumsRound : undefined;
    return {
      runId: this.config.runId, ...this.current, rounds: this.config.rounds,
      received: collector?.answered ?? 0, expected: collector?.target.expected.length ?? 0,
      readyClients: this.host.readyClients(this.config.runId).length, minClients: this.config.minClients,
    };
  }

  /** A client's fit update: validated, checked against the open round and folded into its aggregate. */
  submitFit(clientId: string, raw: unknown): Ack {
    const answer = this.answer(clientId, raw, this.fitRound, parseFitResult, (msg) => ({ ...msg, decoded: this.checkUpdate(clientId, msg) }));
    if (!answer.accepted) this.log.warn('update-rejected', { client: clientId, reason: answer.reason, detail: answer.message });
    return answer;
  }

  /** A client's evaluation of the current global head. */
  submitEvaluate(clientId: string, raw: unknown): Ack {
    const answer = this.answer(clientId, raw, this.evalRound, parseEvaluateResult, (msg) => {
      this.checkClaim(clientId, msg.numExamples, 'numVal');
      return msg;
    });
    if (!answer.accepted) this.log.warn('evaluation-rejected', { client: clientId, reason: answer.reason, detail: answer.message });
    return answer;
  }

  /** A client's personalization report. */
  submitPersonalize(clientId: string, raw: unknown): Ack {
    return this.answer(clientId, raw, this.personalizeRound, parsePersonalizeResult, (msg) => msg);
  }

  /** A site's per-class feature sums and counts (the class-sums phase): checked against the run and what the site declared. */
  submitClassSums(clientId: string, raw: unknown): Ack {
    const answer = this.answer(clientId, raw, this.classSumsRound, parseClassSumsResult, (msg) => ({
      ...msg, decoded: checkClassSums(
        msg, this.head, this.host.declaredCounts(this.config.runId, clientId)?.numTrain, this.trust.maxAbsValue, this.config.headInit === 'discriminant',
      ),
    }));
    if (!answer.accepted) this.log.warn('class-sums-rejected', { client: clientId, reason: answer.reason, detail: answer.message });
    return answer;
  }

  /** A client reported that it could not do what a round asked: the round stops waiting for it. */
  clientFailed(clientId: string, raw: unknown): void {
    try {
      const f = parseClientFailure(raw);
      this.log.warn('client-failure', { client: clientId, stage: f.stage, round: f.round, detail: f.message });
      const round = f.stage === 'fit' ? this.fitRound : f.stage === 'evaluate' ? this.evalRound
        : f.stage === 'class-sums' ? this.classSumsRound : this.personalizeRound;
      if (round && round.target.round === f.round) round.fail(clientId, `client failed: ${f.message}`);
    } catch (err) {
      this.log.warn('malformed-failure', { client: clientId, detail: (err as Error).message });
    }
  }

  /** A client disconnected: no open round waits for it any longer. */
  clientLeft(clientId: string, why: string): void {
    for (const round of [this.fitRound, this.evalRound, this.personalizeRound, this.classSumsRound]) round?.fail(clientId, why);
  }

  /** Ends the run after the current round: exported, status `stopped`, clients told. */
  stop(): void {
    this.stopRequest ??= 'stop';
    this.wake?.();
  }

  /** Pauses after the current round: status `paused`, clients stay connected, `run()` again resumes it. */
  pause(): void {
    this.stopRequest ??= 'pause';
    this.wake?.();
  }

  /**
   * The server is shutting down: closes any open round now and ends `run()` as for a pause, but leaves
   * the run's status `running`, so the next start of the server resumes it by itself.
   */
  interrupt(): void {
    this.stopRequest ??= 'interrupt';
    this.wake?.();
    for (const round of [this.fitRound, this.evalRound, this.personalizeRound, this.classSumsRound]) round?.close();
  }

  /** Whether a shutdown asked the run to stop now (checked after each awaited phase). */
  private interrupted(): boolean {
    return this.stopRequest === 'interrupt';
  }

  /**
   * Validates a submission and hands it to the open round, which checks it against the round and keeps
   * it; every failure becomes a rejection recorded in that round. Never acknowledges before checking.
   */
  private answer<M extends Envelope, R extends Envelope>(
    clientId: string,
    raw: unknown,
    round: RoundCollector<R> | undefined,
    parse: (v: unknown) => M,
    accept: (m: M) => R,
  ): Ack {
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
    const declared = this.host.declaredCounts(this.config.runId, clientId)?.[field];
    if (declared !== undefined && claimed > declared) {
      throw new FtlError(
        ErrorCode.SampleCount,
        `numExamples ${claimed} is more than the ${declared} ${field === 'numTrain' ? 'training' : 'validation'} samples this site declared at ready`,
      );
    }
  }

  /** Content checks of an update against the global model: tensor names, shapes, byte length, finiteness, claims. */
  private checkUpdate(clientId: string, msg: FitResult): AcceptedUpdate {
    const weights = decodeWeights(msg.weights);
    assertSameSpecs(weights.specs, this.global.specs);
    const bad = firstNonFinite(weights.values);
    if (bad >= 0) {
      throw new FtlError(ErrorCode.NonFiniteWeights, `value ${bad} of the update is ${weights.values[bad]}; updates must be finite`);
    }
    const cap = this.config.maxExamplesPerClient;
    if (msg.numExamples > cap) {
      throw new FtlError(ErrorCode.SampleCount, `numExamples ${msg.numExamples} exceeds the cap of ${cap} per client`);
    }
    this.checkClaim(clientId, msg.numExamples, 'numTrain');
    // Kept until the round closes: the trust policy compares each update with the round's others.
    return { values: weights.values, numExamples: msg.numExamples, loss: msg.metrics.loss };
  }

  /**
   * Why a site's `ready` statistics cannot join this run's normalisation (another number of values than
   * the backbone's input has per channel or per value, or values that contradict each other), or undefined.
   */
  statisticsProblem(stats: ChannelStats): string | undefined {
    if (this.config.normalization === 'none') return undefined;
    const [h, w, c] = this.backbone.inputShape;
    const values = this.config.normalizationScope === 'feature' ? h * w * c : c;
    try {
      checkChannelStats(stats, { values, ...(this.config.inputRange ? { range: this.config.inputRange } : {}) });
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Records that a site's statistics were left out of the normalisation (it may send better ones). */
  excludeStatistics(clientId: string, message: string): void {
    this.recordExclusion('statistics-excluded', this.current.round, { clientId, reason: 'bad-statistics', message }, this.log);
  }

  /** The normalisation every instruction carries, when the run normalises its inputs. */
  private normalizationField(): { normalization?: Normalization } {
    return this.normalization ? { normalization: this.normalization } : {};
  }

  /**
   * Federated normalisation, once per run before its first round: combines the channel statistics the
   * ready clients sent (sums, sums of squares, min, max, counts) into one normalisation, exactly as on
   * their pooled data, and records it, so a resumed run keeps the same one. Clients joining later get it too.
   */
  private fixNormalization(): void {
    const kind = this.config.normalization;
    if (kind === 'none' || this.normalization) return;
    const { runId } = this.config;
    const stored = this.store?.listEvents(runId).filter((e) => e.type === 'normalization').at(-1);
    if (stored) {
      const { kind: k, shift, scale } = stored.data as Normalization;
      this.normalization = { kind: k, shift, scale };
      return;
    }
    const reports = this.host.readyStats(runId);
    if (reports.length === 0) {
      throw new FtlError(ErrorCode.InvalidMessage, `run ${runId} normalises inputs (${kind}) but no ready client sent channel statistics`);
    }
    // A robust run leaves the sites with the most extreme means out (never all of them: one always stays).
    const trim = Math.min(this.config.normalizationTrim ?? 0, reports.length - 1);
    this.normalization = combineStats(reports.map((r) => r.stats), kind, { trim });
    const show = (v: number[]) => v.slice(0, 4).map((x) => x.toFixed(4)).join(',') + (v.length > 4 ? `,… (${v.length})` : '');
    this.log.info('normalization', { kind, clients: reports.length, shift: show(this.normalization.shift), scale: show(this.normalization.scale) });
    this.store?.appendEvent(runId, 'normalization', { ...this.normalization, clients: reports.map((r) => r.clientId) });
  }

  /**
   * `headInit: "class-means"` or `"discriminant"`, once per run before round 1: every ready site sends the
   * per-class sums and counts of its training features at the cut (and, for the discriminant, its
   * within-class scatter; no feature, no record); the pooled statistics set the head to the nearest-class-mean
   * classifier (FedNCM) or the shrinkage linear discriminant, which is model version 0. A refused answer leaves its site
   * out (recorded as class-sums-excluded). The result is recorded ({@link HEAD_INIT_EVENT}), so a resumed
   * run takes it from the store, or from its checkpoint once a round trained, and never asks again.
   */
  private async initHead(): Promise<void> {
    const method = this.config.headInit;
    if ((method !== 'class-means' && method !== 'discriminant') || this.modelVersion > 0) return;
    const { runId, roundDeadlineMs } = this.config;
    const recorded = this.store?.listEvents(runId).filter((e) => e.type === HEAD_INIT_EVENT).at(-1);
    if (recorded) {
      if ((recorded.data as { method?: unknown }).method === method) this.global = withRecordedOutputLayer(this.global, recorded.data);
      return;
    }
    const expected = this.host.readyClients(runId);
    const collector = new RoundCollector<ClassSumsResult & { decoded: SiteClassSums }>({ runId, round: 0, modelVersion: 0, expected }, roundDeadlineMs);
    this.classSumsRound = collector;
    this.current = { phase: 'class-means', round: 0 };
    for (const id of expected) {
      const sent = this.host.send(id, 'class-sums', {
        protocol: PROTOCOL_VERSION, runId, round: 0, modelVersion: 0, ...this.normalizationField(), ...(method === 'discriminant' ? { scatter: true } : {}),
      });
      if (!sent) collector.fail(id, 'disconnected before the class sums were asked');
    }
    const { results, rejected, failures } = await collector.settled;
    this.classSumsRound = undefined;
    if (this.interrupted()) return; // nothing recorded: the next start asks again
    for (const r of rejected) this.recordExclusion('class-sums-excluded', 0, { clientId: r.clientId, reason: r.ack.reason, message: r.ack.message }, this.log);
    for (const [id, why] of failures) this.log.warn('client-missed-class-sums', { client: id, why });
    // In site order, not arrival order: the same answers always give the same head.
    const clients = [...results.keys()].sort();
    if (clients.length === 0) {
      // A missing site never stalls a run: without any sums the head keeps its random start.
      this.log.warn('head-init', { method: 'random', why: 'no site sent class sums' });
      this.store?.appendEvent(runId, HEAD_INIT_EVENT, { method: 'random', why: 'no site sent class sums', clients });
      return;
    }
    const sites = clients.map((id) => results.get(id)!.decoded);
    const { weights, counts } = method === 'discriminant' ? await discriminantHeadOf(this.global, sites, this.head) : classMeansHead(this.global, sites, this.head);
    this.global = weights;
    const missing = this.config.classes.filter((_, c) => counts[c] === 0);
    // Counts only: the sums (and the means they give) stay out of the log.
    this.log.info('head-init', { method, clients: clients.length, counts: counts.join(','), ...(missing.length ? { missing: missing.join(',') } : {}) });
    this.store?.appendEvent(runId, HEAD_INIT_EVENT, { method, clients, counts, missing, head: outputLayerOf(weights) });
  }

  /** Waits (bounded) until `minClients` are ready; returns early when the run is asked to stop or pause. */
  private async waitForClients(): Promise<void> {
    const { minClients, waitTimeoutMs, runId } = this.config;
    const ready = () => this.host.readyClients(runId).length;
    if (ready() >= minClients) return;
    this.current = { ...this.current, phase: 'waiting-for-clients' };
    this.log.info('waiting-for-clients', { need: minClients, ready: ready() });
    let unsubscribe = () => {};
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new FtlError(
          ErrorCode.Timeout,
          `only ${ready()} of the ${minClients} clients needed were ready after ${waitTimeoutMs / 1000} s; ` +
            'start more clients or lower minClients',
        )), waitTimeoutMs);
        const check = () => {
          if (ready() >= minClients || this.stopRequest) {
            clearTimeout(timer);
            resolve();
          }
        };
        this.wake = check;
        unsubscribe = this.host.onClientReady(check);
      });
    } finally {
      unsubscribe();
      this.wake = undefined;
    }
  }

  /**
   * Runs the run to its end (or until paused): resumes from the store when the run is already there,
   * trains the remaining rounds, evaluates each new global head on the clients, exports the global model
   * and tells clients the run is over.
   */
  async run(onRound?: (r: RoundRecord) => void): Promise<RunSummary> {
    const { rounds, runId } = this.config;
    const records = this.resume();
    let reason: RunOutcome = 'completed';
    let personalization: PersonalizationRecord[] | undefined;
    // Best round by the median of the sites' validation losses (early stopping), so no one site decides
    // which head is exported. Not persisted: after a restart it is tracked again from the resumed rounds on.
    let best: { round: number; score: number; weights: Weights } | undefined;
    try {
      await this.waitForClients();
      this.fixNormalization();
      await this.initHead();
      let attempt = 1;
      let round = records.length + 1;
      while (round <= rounds && !this.stopRequest) {
        this.enterRound(round);
        const outcome = await this.runRound(round);
        if (outcome.interrupted) break;
        const { record, participants, rejected, medianValLoss, medianValAccuracy } = outcome;
        if (record.status === 'no-quorum' && attempt <= this.config.quorumRetries) {
          // The global model is unchanged; try the same round again with whoever is ready then.
          this.store?.appendEvent(runId, 'round-retry', { round, attempt, accepted: record.accepted, need: this.config.minFitClients });
          this.log.warn('round-retry', { round, attempt, of: this.config.quorumRetries });
          onRound?.(record);
          attempt++;
          continue;
        }
        attempt = 1;
        // Committed with its checkpoint in one transaction: a restart resumes after it, never re-runs it.
        if (record.status === 'no-quorum') {
          this.store?.recordFailedRound(runId, { record, participants, rejected });
          records.push(record);
          onRound?.(record);
          throw new FtlError(
            ErrorCode.Quorum,
            `round ${round} got ${record.accepted} accepted updates, below minFitClients ${this.config.minFitClients}, ` +
              `after ${this.config.quorumRetries} retries; the run ends with the global model of round ${round - 1}`,
          );
        }
        this.store?.commitRound(runId, { record, participants, rejected }, {
          modelVersion: this.modelVersion, specs: this.global.specs, values: this.global.values, strategyState: this.strategy.state(),
        });
        records.push(record);
        onRound?.(record);
        if (this.config.patience > 0) {
          // Scored so that lower is better: the median loss, or minus the median accuracy.
          const byAccuracy = this.config.patienceMetric === 'accuracy';
          const score = byAccuracy ? -medianValAccuracy : medianValLoss;
          if (Number.isFinite(score) && (best === undefined || score < best.score)) {
            best = { round, score, weights: { specs: this.global.specs, values: this.global.values.slice() } };
          }
          if (best && round - best.round >= this.config.patience) {
            const value = byAccuracy ? { bestValAccuracy: -best.score } : { bestValLoss: best.score };
            this.log.info('early-stop', { round, bestRound: best.round, ...Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v.toFixed(4)])) });
            this.store?.appendEvent(runId, 'early-stop', { round, bestRound: best.round, ...value });
            break;
          }
        }
        round++;
      }
      if ((this.stopRequest === 'pause' || this.stopRequest === 'interrupt') && records.length < rounds) {
        this.current = { ...this.current, phase: 'idle' };
        const event = this.stopRequest === 'pause' ? 'run-paused' : 'run-interrupted';
        if (this.stopRequest === 'pause') this.store?.setRunStatus(runId, 'paused');
        this.store?.appendEvent(runId, event, { afterRound: records.length });
        this.log.info(event, { afterRound: records.length });
        return { runId, reason: 'paused', rounds: records, weights: this.global, modelVersion: this.modelVersion };
      }
      // With early stopping the run ends on its best global head, not its last.
      if (best) this.global = best.weights;
      // A pause or interrupt that comes during the last round changes nothing: the run is complete.
      if (this.stopRequest === 'stop' && records.length < rounds) reason = 'stopped';
      else if (this.config.personalizeEpochs > 0) personalization = await this.personalize(records.length);
    } catch (err) {
      this.current = { ...this.current, phase: 'idle' };
      this.store?.setRunStatus(runId, 'failed');
      this.store?.appendEvent(runId, 'run-failed', { message: (err as Error).message });
      this.host.broadcast('run-end', { protocol: PROTOCOL_VERSION, runId, reason: 'failed', message: (err as Error).message });
      // A failed run still leaves its last good global model where the operator expects it.
      if (this.config.exportDir) {
        await this.exportTo(this.config.exportDir, records, best?.round).catch((e: unknown) =>
          this.log.error('export-failed', { dir: this.config.exportDir, detail: (e as Error).message }));
      }
      throw err;
    }
    this.current = { ...this.current, phase: 'finishing' };
    let exportDir: string | undefined;
    if (this.config.exportDir && (await this.exportTo(this.config.exportDir, records, best?.round))) exportDir = this.config.exportDir;
    this.store?.setRunStatus(runId, reason);
    this.store?.appendEvent(runId, 'run-end', { reason, rounds: records.length, modelVersion: this.modelVersion });
    this.host.broadcast('run-end', { protocol: PROTOCOL_VERSION, runId, reason });
    this.current = { ...this.current, phase: 'idle' };
    return {
      runId, reason, rounds: records, weights: this.global, modelVersion: this.modelVersion, ...(best ? { bestRound: best.round } : {}),
      ...(exportDir ? { exportDir } : {}), ...(personalization ? { personalization } : {}),
    };
  }

  /**
   * Writes the global model (backbone + head) as a TensorFlow.js folder with its description, when some
   * round trained it: an untrained head is never exported, and a more trained export of this run already
   * in `dir` is kept. Returns whether `dir` holds this run's model now.
   */
  private async exportTo(dir: string, records: RoundRecord[], bestRound?: number): Promise<boolean> {
    if (this.modelVersion === 0) {
      this.log.warn('export-skipped', { dir, why: 'no round trained the model; whatever the folder holds is left as it is' });
      return false;
    }
    const { digest, outcome } = await exportRunModel({
      backbone: this.backbone, config: this.config, head: this.head, weights: this.global, dir, modelVersion: this.modelVersion,
      rounds: records, ...(bestRound !== undefined ? { bestRound } : {}), ...this.normalizationField(),
    });
    if (outcome === 'kept') {
      this.log.warn('export-kept', { dir, why: 'the folder holds a more trained model of this run' });
    } else {
      this.log.info('exported', { dir, sha256: digest });
      // Where the model went, so a later start with the same run id can say it.
      this.store?.appendEvent(this.config.runId, MODEL_EXPORTED_EVENT, { dir: resolve(dir), modelVersion: this.modelVersion, sha256: digest });
    }
    return true;
  }

  /**
   * Creates the run in the store, or, when the store already has it (a restart, a resume after a pause,
   * a run created through the API), restores the global weights, model version and strategy state from
   * its newest valid checkpoint and returns the rounds already done, so the run continues with the next.
   */
  private resume(): RoundRecord[] {
    const { runId } = this.config;
    if (!this.store) return [];
    const existing = this.store.getRun(runId);
    if (!existing) {
      this.store.createRun(runId, toRunConfig(this.config));
      this.store.setRunStatus(runId, 'running');
      this.store.appendEvent(runId, 'run-start', { rounds: this.config.rounds, strategy: this.config.strategy.name });
      for (const e of this.unstoredEvents.splice(0)) this.store.appendEvent(runId, e.type, e.data);
      return [];
    }
    const done = this.store.listRounds(runId).map((r) => r.record);
    const checkpoint = this.store.latestCheckpoint(runId, (round, why) => this.log.warn('checkpoint-corrupt', { round, why }));
    if (checkpoint) {
      // The checkpointed round decides the trainable set (gradual unfreezing grows it over the rounds).
      const expected = this.initialWeights(unfrozenLayerCount(this.config.fineTuning, checkpoint.round)).specs;
      assertSameSpecs(checkpoint.specs, expected);
      this.global = { specs: expected, values: checkpoint.values };
      this.modelVersion = checkpoint.modelVersion;
      this.strategy.restore(checkpoint.strategyState);
    }
    // Rounds that changed the model after the last valid checkpoint (its successor was corrupt) are run
    // again from it; failed rounds in between changed nothing and stay done.
    const validUpTo = checkpoint?.round ?? 0;
    const cut = done.findIndex((r) => r.round > validUpTo && r.status !== 'no-quorum');
    if (cut >= 0) {
      this.store.discardRoundsAfter(runId, done[cut]!.round - 1);
      done.length = cut;
    }
    this.store.setRunStatus(runId, 'running');
    const event = done.length === 0 && existing.status === 'created' ? 'run-start' : 'run-resumed';
    this.store.appendEvent(runId, event, { afterRound: done.length, modelVersion: this.modelVersion });
    this.log.info(event, { afterRound: done.length, modelVersion: this.modelVersion });
    return done;
  }

  private async runRound(round: number): Promise<RoundOutcome> {
    const t0 = performance.now();
    const in0 = this.host.bytes.received;
    const out0 = this.host.bytes.sent;
    const { runId, fit, roundDeadlineMs, minFitClients } = this.config;
    const ready = this.host.readyClients(runId);
    const selected = this.strategy.configureFit(round, ready);
    const log = this.log.child({ round });
    log.info('round-start', { selected: selected.length, ready: ready.length, strategy: this.strategy.name });

    const target = { runId, round, modelVersion: this.modelVersion, expected: selected };
    const fitRound = new RoundCollector<FitResult & { decoded: AcceptedUpdate }>(target, roundDeadlineMs);
    this.fitRound = fitRound;
    this.current = { phase: 'fit', round };
    const weights = encodeWeights(this.global);
    const extras = this.strategy.fitExtras(round);
    selected.forEach((id, i) => {
      const sent = this.host.send(id, 'fit', {
        protocol: PROTOCOL_VERSION, runId, round, modelVersion: this.modelVersion, weights,
        config: { ...scheduledFit(fit, this.config.schedule, round), seed: deriveSeed(this.config.seed, round, i), ...extras, ...this.backboneRate() },
        ...this.normalizationField(),
      });
      if (!sent) fitRound.fail(id, 'disconnected before the round started');
    });
    const collected = await fitRound.settled;
    this.fitRound = undefined;
    // A shutdown cut the round short: nothing of it is kept, so the next start runs it again in full.
    if (this.interrupted()) return { interrupted: true };
    for (const [id, why] of collected.failures) log.warn('client-missed-round', { client: id, why });

    const accepted = [...collected.results.entries()].map(([clientId, r]) => ({ clientId, ...r.decoded }));
    const screen = screenUpdates(this.global.values, accepted, this.trust, this.moveReference);
    for (const e of screen.excluded) this.recordExclusion('update-excluded', round, e, log);
    const updates = screen.kept;
    let status: RoundRecord['status'] = updates.length >= minFitClients ? 'aggregated' : 'no-quorum';
    let trainLoss = NaN;
    const previous = { global: this.global, modelVersion: this.modelVersion };
    if (status === 'aggregated') {
      const next = this.aggregate(round, updates, log);
      if (next === null) {
        status = 'kept';
      } else {
        this.global = { specs: this.global.specs, values: next };
        this.modelVersion++;
        if (screen.reference !== undefined) this.moveReference = screen.reference;
      }
      let n = 0;
      trainLoss = 0;
      for (const u of updates) {
        trainLoss += u.loss * u.numExamples;
        n += u.numExamples;
      }
      trainLoss /= n;
    } else {
      log.warn('round-no-quorum', { accepted: updates.length, need: minFitClients });
    }

    const evaluation = await this.evaluateRound(round);
    if (this.interrupted()) {
      this.global = previous.global;
      this.modelVersion = previous.modelVersion;
      return { interrupted: true };
    }
    const record: RoundRecord = {
      round, status, selected: selected.length, accepted: updates.length, rejected: collected.rejectedCount,
      excluded: screen.excluded.length, failed: collected.failures.size, trainLoss,
      valLoss: evaluation.loss, valAccuracy: evaluation.accuracy, evalClients: evaluation.clients,
      bytesIn: this.host.bytes.received - in0, bytesOut: this.host.bytes.sent - out0,
      seconds: (performance.now() - t0) / 1000, modelVersion: this.modelVersion,
    };
    log.info('round-end', { status, accepted: record.accepted, excluded: record.excluded, valAccuracy: record.valAccuracy.toFixed(4) });
    return {
      record,
      medianValLoss: evaluation.medianLoss,
      medianValAccuracy: evaluation.medianAccuracy,
      participants: updates.map((u) => u.clientId),
      rejected: collected.rejected.map((r) => ({ clientId: r.clientId, reason: r.ack.reason, message: r.ack.message })),
    };
  }

  /**
   * The strategy's aggregate of the round's kept updates, or null to keep the previous global model: when
   * the rule has none (too few updates for it), fails, or gives a value that is not finite.
   */
  private aggregate(round: number, updates: readonly AcceptedUpdate[] & ReadonlyArray<{ clientId: string }>, log: Logger): Float32Array | null {
    let next: Float32Array | null;
    try {
      const aggregator: RoundAggregator = this.strategy.beginAggregation(round, this.global.values);
      for (const u of updates) aggregator.add(u);
      next = aggregator.finish();
    } catch (err) {
      log.warn('aggregate-kept-previous', { strategy: this.strategy.name, why: (err as Error).message });
      return null;
    }
    const bad = next ? firstNonFinite(next) : -1;
    if (next === null || bad >= 0) {
      const why = next === null ? `no aggregate (${updates.length} updates; ${this.strategy.name} needs ${this.strategy.minUpdates})` : `value ${bad} is not finite`;
      log.warn('aggregate-kept-previous', { strategy: this.strategy.name, why });
      return null;
    }
    return next;
  }

  /** Records a site's contribution left out by the trust policy: in the log and the store, with round and reason. */
  private recordExclusion(
    type: 'update-excluded' | 'evaluation-excluded' | 'statistics-excluded' | 'class-sums-excluded', round: number, e: { clientId: string; reason: string; message: string }, log: Logger,
  ): void {
    log.warn(type, { client: e.clientId, reason: e.reason, detail: e.message });
    const event = { type, data: { round, client: e.clientId, reason: e.reason, message: e.message } };
    // Sites report ready (and may be refused) before the run starts and exists in the store: kept until it does.
    if (this.store?.getRun(this.config.runId)) this.store.appendEvent(this.config.runId, event.type, event.data);
    else if (this.store) this.unstoredEvents.push(event);
  }

  /** The backbone learning-rate factor, sent only when the global model holds backbone layers. */
  private backboneRate(): { backboneLrFactor?: number } {
    return backboneLayersOf(this.global.specs).length > 0 ? { backboneLrFactor: this.config.fineTuning.backboneLrFactor } : {};
  }

  private async evaluateRound(round: number): Promise<{ loss: number; accuracy: number; clients: number; medianLoss: number; medianAccuracy: number }> {
    const { runId, roundDeadlineMs } = this.config;
    const expected = this.strategy.configureEvaluate(round, this.host.readyClients(runId));
    const evalRound = new RoundCollector<EvaluateResult>({ runId, round, modelVersion: this.modelVersion, expected }, roundDeadlineMs);
    this.evalRound = evalRound;
    this.current = { phase: 'evaluate', round };
    const weights = encodeWeights(this.global);
    for (const id of expected) {
      if (!this.host.send(id, 'evaluate', { protocol: PROTOCOL_VERSION, runId, round, modelVersion: this.modelVersion, weights, ...this.normalizationField() })) {
        evalRound.fail(id, 'disconnected before evaluation');
      }
    }
    const { results, rejected } = await evalRound.settled;
    this.evalRound = undefined;
    // A refused evaluation (out of range, or more samples than the site declared) is left out and recorded.
    for (const r of rejected) {
      // Late, duplicate or misaddressed answers are timing, not content: only refused contents are exclusions.
      if (TIMING_REFUSALS.has(r.ack.reason)) continue;
      this.recordExclusion('evaluation-excluded', round, { clientId: r.clientId, reason: r.ack.reason, message: r.ack.message }, this.log);
    }
    const answers = [...results.values()];
    // No site outweighs the others by claiming more validation samples; the median decides early stopping.
    const counts = capCounts(answers.map((r) => r.numExamples), this.trust.weightCap);
    const weighted = answers.map((r, i) => ({ numExamples: counts[i]!, loss: r.loss, accuracy: r.accuracy }));
    const summary = this.strategy.aggregateEvaluate(round, weighted) ?? { loss: NaN, accuracy: NaN, clients: 0 };
    const medianLoss = answers.length > 0 ? median(answers.map((r) => r.loss)) : NaN;
    const medianAccuracy = answers.length > 0 ? median(answers.map((r) => r.accuracy)) : NaN;
    return { loss: summary.loss, accuracy: summary.accuracy, clients: summary.clients, medianLoss, medianAccuracy };
  }

  /** After the last round: every ready client fine-tunes the final global head and reports both accuracies. */
  private async personalize(round: number): Promise<PersonalizationRecord[]> {
    const { runId, roundDeadlineMs, fit, personalizeEpochs } = this.config;
    const expected = this.host.readyClients(runId);
    const collector = new RoundCollector<PersonalizeResult>({ runId, round, modelVersion: this.modelVersion, expected }, roundDeadlineMs);
    this.personalizeRound = collector;
    this.current = { phase: 'personalize', round };
    const weights = encodeWeights(this.global);
    expected.forEach((id, i) => {
      const sent = this.host.send(id, 'personalize', {
        protocol: PROTOCOL_VERSION, runId, round, modelVersion: this.modelVersion, weights,
        config: { ...fit, epochs: personalizeEpochs, seed: deriveSeed(this.config.seed, round + 1, i), ...this.backboneRate() },
        ...this.normalizationField(),
      });
      if (!sent) collector.fail(id, 'disconnected before personalization');
    });
    const { results } = await collector.settled;
    this.personalizeRound = undefined;
    return [...results.entries()].map(([clientId, r]) => ({
      clientId, numExamples: r.numExamples, globalAccuracy: r.globalAccuracy, personalAccuracy: r.personalAccuracy,
    }));
  }
}

/** Refusals about when or where an answer arrived, not what it held. */
const TIMING_REFUSALS: ReadonlySet<string> = new Set(['unknown-run', 'stale-round', 'stale-model', 'not-selected', 'duplicate', 'round-closed']);

/** The median (mean of the middle two for an even count). */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return Number.isInteger(mid) ? (sorted[mid - 1]! + sorted[mid]!) / 2 : sorted[Math.floor(mid)]!;
}

function sameSpecs(a: readonly WeightSpec[], b: readonly WeightSpec[]): boolean {
  return a.length === b.length && a.every((s, i) => s.name === b[i]!.name && s.shape.join('x') === b[i]!.shape.join('x'));
}
