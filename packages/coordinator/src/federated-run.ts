import {
  checkChannelStats,
  createStrategy,
  ErrorCode,
  FtlError,
  isFtlError,
  PROTOCOL_VERSION,
  specsSize,
  unfrozenLayerCount,
  type Ack,
  type ChannelStats,
  type HeadConfig,
  type Logger,
  type Strategy,
  type Welcome,
} from '@ftl/shared';
import { tableSummaryProblem, type TableSummary } from '@ftl/shared';
import { BACKBONE_PATH, type ServedBackbone } from './backbone-server.js';
import { assertHeadInit, classSumsMessageBytes } from './class-means.js';
import type { CoordinatorConfig } from './config.js';
import { resolvedHeadInit, type ResolvedHeadInit } from './run-config.js';
import { EarlyStopping } from './early-stopping.js';
import type { GlobalModel } from './global-model.js';
import { initHead } from './head-init.js';
import { timedAggregation } from './aggregation-timing.js';
import { personalize } from './personalization.js';
import { runRounds, type RoundListener } from './round-phases.js';
import { secureAggregationMessageBytes } from './secure-round.js';
import type { RunContext } from './run-context.js';
import { ExclusionLog } from './run-exclusions.js';
import { exportRun } from './run-export.js';
import type { RunHost } from './run-host.js';
import { fixNormalization } from './run-normalization.js';
import { fixTableEncoding, sendTableEncoding, tableRunProblem } from './run-table-encoding.js';
import { resumeRun } from './run-resume.js';
import type { RunReason } from './run-states.js';
import type { PersonalizationRecord, RunOutcome, RunProgress, RunSummary } from './run-summary.js';
import type { Store } from './store/store.js';
import { TrainableSets } from './trainable-sets.js';
import { type SecureEvent, UpdateIntake, type Stage } from './update-intake.js';
import { DEFAULT_TRUST } from './update-screen.js';
import { waitForClients } from './wait-for-clients.js';

/** The collection each progress phase is waiting on. */
const PHASE_STAGE: Partial<Record<RunProgress['phase'], Stage>> = {
  fit: 'fit',
  evaluate: 'evaluate',
  personalize: 'personalize',
  'class-means': 'class-sums',
};

/**
 * One federated run: waits for clients, trains rounds with its strategy, evaluates each new global head
 * on the clients, checkpoints every round in the store and exports the global model. It owns no sockets:
 * the {@link RunHost} (the coordinator server) routes clients' messages to it and carries its own.
 * A store makes it resumable: a run already in the store continues after its newest valid checkpoint.
 *
 * The run is a sequence of phases over one {@link RunContext}: resume (run-resume.ts) → wait for clients
 * → normalisation (run-normalization.ts) → head init (head-init.ts) → rounds (round-phases.ts) →
 * personalization → export (run-export.ts). Sites' answers enter through {@link UpdateIntake}.
 */
export class FederatedRun {
  private readonly strategy: Strategy;
  private readonly sets: TrainableSets;
  private readonly intake: UpdateIntake;
  private readonly exclusions: ExclusionLog;
  private readonly model: GlobalModel;
  private readonly ctx: RunContext;
  private stopRequest?: 'stop' | 'pause' | 'interrupt';
  /** Who asked for the stop or pause, for the reason the run records ("by the operator"). */
  private requestedBy = 'on request';
  private wake?: () => void;
  private current: Pick<RunProgress, 'phase' | 'round'> = { phase: 'idle', round: 0 };
  private readonly log: Logger;
  /** How the head starts: the config's `headInit`, with `auto` resolved. */
  readonly headInit: ResolvedHeadInit;

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
    // `auto` becomes the initialisation this run can do, now that the head's size is known; the config
    // keeps what was asked, so a restart with the same settings matches the stored run.
    this.headInit = resolvedHeadInit(config, head.featureDim);
    if (config.headInit === 'auto') this.log.info('head-init-chosen', { method: this.headInit, from: 'auto' });
    assertHeadInit({ headInit: this.headInit, fineTuning: config.fineTuning }, head);
    const tableProblem = tableRunProblem(config, backbone.inputShape);
    if (tableProblem) throw new FtlError(ErrorCode.InvalidConfig, tableProblem);
    this.sets = new TrainableSets(config, backbone, head);
    this.model = { weights: this.sets.forRound(1), version: 0 };
    this.strategy = timedAggregation(
      createStrategy(config.strategy, {
        fractionFit: config.fractionFit,
        minFitClients: config.minFitClients,
        sampleWeightCap: config.sampleWeightCap,
        seed: config.seed,
      }),
      (seconds) => host.metrics?.aggregated(config.runId, seconds),
    );
    const needed = this.strategy.minUpdates;
    if (config.minClients < needed) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `strategy ${this.strategy.name} needs at least ${needed} updates in a round to aggregate, but minClients is ${config.minClients}, ` +
          `so a round could start with too few; raise minClients to ${needed} or more, or lower the strategy's f`,
      );
    }
    const trust = config.trust ?? DEFAULT_TRUST;
    this.exclusions = new ExclusionLog(config.runId, store, this.log);
    this.intake = new UpdateIntake({
      config,
      head,
      host,
      log: this.log,
      trust,
      headInit: this.headInit,
      globalSpecs: () => this.model.weights.specs,
    });
    this.ctx = {
      config,
      head,
      backbone,
      host,
      log: this.log,
      ...(store ? { store } : {}),
      strategy: this.strategy,
      trust,
      intake: this.intake,
      exclusions: this.exclusions,
      sets: this.sets,
      model: this.model,
      headInit: this.headInit,
      setPhase: (phase, round) => (this.current = { phase, round: round ?? this.current.round }),
      interrupted: () => this.stopRequest === 'interrupt',
    };
  }

  get runId(): string {
    return this.config.runId;
  }

  /**
   * Bytes of the largest update of the run (head plus the most unfrozen backbone layers it ever trains)
   * plus envelope: the largest message a client needs to send.
   */
  maxMessageBytes(): number {
    return Math.max(
      specsSize(this.sets.largest.specs) * 4 * 2 + 64 * 1024,
      classSumsMessageBytes(this.headInit, this.head),
      secureAggregationMessageBytes(this.config),
    );
  }

  /** What a client receives on joining this run. */
  welcome(clientId: string): Welcome {
    const { config, backbone } = this;
    return {
      protocol: PROTOCOL_VERSION,
      runId: config.runId,
      clientId,
      backbone: {
        path: BACKBONE_PATH,
        files: backbone.files.map((f) => f.name),
        sha256: backbone.sha256,
        featureLayer: config.featureLayer ?? backbone.featureLayer,
      },
      head: this.head,
      classes: [...config.classes],
      localLayers: [...config.localLayers],
      ...(config.augment.copies > 0 ? { augment: { ...config.augment } } : {}),
      ...(config.normalization !== 'none' ? { normalization: config.normalization, normalizationScope: config.normalizationScope } : {}),
      ...(config.table ? { table: config.table } : {}),
      ...(unfrozenLayerCount(config.fineTuning, 1) > 0 ? { backboneTrainsFromStart: true } : {}),
    };
  }

  /** Where the run stands now. */
  progress(): RunProgress {
    const stage = PHASE_STAGE[this.current.phase];
    // A secure-aggregation round collects its fit in phases of their own stage.
    const collector = stage
      ? (this.intake.collector(stage) ?? (stage === 'fit' ? this.intake.collector('secure-aggregation') : undefined))
      : undefined;
    return {
      runId: this.config.runId,
      ...this.current,
      rounds: this.config.rounds,
      received: collector?.answered ?? 0,
      expected: collector?.target.expected.length ?? 0,
      readyClients: this.host.readyClients(this.config.runId).length,
      minClients: this.config.minClients,
    };
  }

  /** A client's fit update: parsed, checked against the open round and the global model, kept for the round's aggregate. */
  submitFit(clientId: string, raw: unknown): Ack {
    return this.intake.submitFit(clientId, raw);
  }

  /** A client's evaluation of the current global head. */
  submitEvaluate(clientId: string, raw: unknown): Ack {
    return this.intake.submitEvaluate(clientId, raw);
  }

  /** A client's personalization report. */
  submitPersonalize(clientId: string, raw: unknown): Ack {
    return this.intake.submitPersonalize(clientId, raw);
  }

  /** A site's per-class feature sums and counts (the class-sums phase): checked against the run and what the site declared. */
  submitClassSums(clientId: string, raw: unknown): Ack {
    return this.intake.submitClassSums(clientId, raw);
  }

  /** A site's answer to a phase of secure aggregation (secure-round.ts): checked against the open phase. */
  submitSecure(event: SecureEvent, clientId: string, raw: unknown): Ack {
    return this.intake.submitSecure(event, clientId, raw);
  }

  /** A client reported that it could not do what a round asked: the round stops waiting for it. */
  clientFailed(clientId: string, raw: unknown): void {
    this.intake.clientFailed(clientId, raw);
  }

  /** A client disconnected: no open round waits for it any longer. */
  clientLeft(clientId: string, why: string): void {
    this.intake.clientLeft(clientId, why);
  }

  /**
   * Ends the run after the current round: exported, status `stopped`, clients told. `by` says who asked,
   * in the reason the run records (`stopped by the operator after round 3 of 10`).
   */
  stop(by?: string): void {
    this.request('stop', by);
  }

  /** Pauses after the current round: status `paused`, clients stay connected, `run()` again resumes it. `by` as for {@link stop}. */
  pause(by?: string): void {
    this.request('pause', by);
  }

  private request(what: 'stop' | 'pause', by: string | undefined): void {
    if (this.stopRequest === undefined && by !== undefined) this.requestedBy = by;
    this.stopRequest ??= what;
    this.wake?.();
  }

  /** The reason a move records: `message`, with where the run stood when it happened. */
  private reason(message: string, code?: string): RunReason {
    return { message, phase: this.current.phase, round: this.current.round, ...(code !== undefined ? { code } : {}) };
  }

  /**
   * The server is shutting down: closes any open round now and ends `run()` as for a pause, but leaves
   * the run's status `running`, so the next start of the server resumes it by itself.
   */
  interrupt(): void {
    this.stopRequest ??= 'interrupt';
    this.wake?.();
    this.intake.closeAll();
  }

  /**
   * Why a site's `ready` table summary cannot join this run's encoding (a tabular run without one, an image
   * run with one, columns other than the run's, statistics that contradict each other), or undefined.
   */
  tableSummaryProblem(summary: TableSummary | undefined): string | undefined {
    const { table } = this.config;
    if (!table) return summary ? `run ${this.config.runId} trains on images, but the site sent a table summary` : undefined;
    if (!summary)
      return `run ${this.config.runId} trains on tables; send the summary of the site's table with ready (start the site with --table FILE)`;
    return tableSummaryProblem(summary, table);
  }

  /** A site became ready: a tabular run whose encoding is fixed sends it the encoding. */
  siteReady(clientId: string): void {
    sendTableEncoding(this.ctx, clientId);
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
    this.exclusions.record('statistics-excluded', this.current.round, { clientId, reason: 'bad-statistics', message });
  }

  /**
   * Runs the run to its end (or until paused): resumes from the store when the run is already there,
   * trains the remaining rounds, evaluates each new global head on the clients, exports the global model
   * and tells clients the run is over.
   */
  async run(onRound?: RoundListener): Promise<RunSummary> {
    const { ctx, config, store, model } = this;
    const { rounds, runId } = config;
    const records = resumeRun(ctx);
    let reason: RunOutcome = 'completed';
    let personalization: PersonalizationRecord[] | undefined;
    let message: string | undefined;
    const early = new EarlyStopping(config, this.log, store);
    const stopRequested = () => this.stopRequest !== undefined;
    try {
      await waitForClients(ctx, { stopRequested, setWake: (wake) => (this.wake = wake) });
      fixNormalization(ctx);
      fixTableEncoding(ctx);
      // A stop asked for while the run waited ends it before any exchange with the sites.
      if (!stopRequested()) await initHead(ctx);
      const played: RoundListener = (record, snapshot) => {
        this.host.metrics?.roundPlayed(runId, record);
        return onRound?.(record, snapshot);
      };
      ({ message } = await runRounds(ctx, records, { stopRequested, early, onRound: played }));
      if ((this.stopRequest === 'pause' || this.stopRequest === 'interrupt') && records.length < rounds) {
        const why = this.reason(`paused ${this.requestedBy} after round ${records.length} of ${rounds}`);
        this.current = { ...this.current, phase: 'idle' };
        const event = this.stopRequest === 'pause' ? 'run-paused' : 'run-interrupted';
        // An interrupted run stays `running`: the next start of the server resumes it.
        if (this.stopRequest === 'pause') store?.moveRun(runId, 'paused', why);
        store?.appendEvent(runId, event, { afterRound: records.length });
        this.log.info(event, { afterRound: records.length });
        return { runId, reason: 'paused', rounds: records, weights: model.weights, modelVersion: model.version };
      }
      // With early stopping the run ends on its best global head, not its last.
      if (early.best) model.weights = early.best.weights;
      // A pause or interrupt that comes during the last round changes nothing: the run is complete.
      if (this.stopRequest === 'stop' && records.length < rounds) reason = 'stopped';
      else if (config.personalizeEpochs > 0) personalization = await personalize(ctx, records.length);
    } catch (err) {
      // Where the run stood when it failed is part of why: taken before the phase goes idle.
      const why = this.reason((err as Error).message, isFtlError(err) ? err.code : ErrorCode.InternalError);
      this.current = { ...this.current, phase: 'idle' };
      store?.moveRun(runId, 'failed', why);
      store?.appendEvent(runId, 'run-failed', { message: why.message, phase: why.phase, round: why.round, code: why.code });
      this.host.broadcast('run-end', { protocol: PROTOCOL_VERSION, runId, reason: 'failed', message: (err as Error).message });
      // A failed run still leaves its last good global model where the operator expects it.
      if (config.exportDir) {
        await exportRun(ctx, config.exportDir, records, early.best?.round).catch((e: unknown) =>
          this.log.error('export-failed', { dir: config.exportDir, detail: (e as Error).message }),
        );
      }
      throw err;
    }
    // Taken before the export: the phase a stop or an early end came in, not `finishing`.
    const why =
      reason === 'stopped'
        ? this.reason(`stopped ${this.requestedBy} after round ${records.length} of ${rounds}`)
        : message !== undefined
          ? this.reason(message)
          : undefined;
    this.current = { ...this.current, phase: 'finishing' };
    let exportDir: string | undefined;
    if (config.exportDir && (await exportRun(ctx, config.exportDir, records, early.best?.round))) exportDir = config.exportDir;
    store?.moveRun(runId, reason, why);
    store?.appendEvent(runId, 'run-end', { reason, rounds: records.length, modelVersion: model.version, ...(message ? { message } : {}) });
    this.host.broadcast('run-end', { protocol: PROTOCOL_VERSION, runId, reason, ...(message ? { message: message.slice(0, 2000) } : {}) });
    if (message) this.log.warn('run-ended-early', { reason, detail: message });
    this.current = { ...this.current, phase: 'idle' };
    return {
      runId,
      reason,
      rounds: records,
      weights: model.weights,
      modelVersion: model.version,
      ...(early.best ? { bestRound: early.best.round } : {}),
      ...(exportDir ? { exportDir } : {}),
      ...(personalization ? { personalization } : {}),
      ...(message ? { message } : {}),
    };
  }
}
