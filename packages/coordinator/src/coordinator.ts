import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import {
  createHead, createMsgpackParser, createStrategy, decodeWeights, deriveSeed, encodeWeights, ErrorCode,
  firstNonFinite, FtlError, getTrainableWeights, parseClientFailure, parseEvaluateResult, parseFitResult,
  parseHandshakeAuth, parsePersonalizeResult, parseReady, PROTOCOL_VERSION, rejectionFor, specsSize, assertSameSpecs,
  type PersonalizeResult, type RoundAggregator, type Strategy,
  type Ack, type ByteCounter, type ClientToServerEvents, type ConnectRefusal, type Envelope, type HandshakeAuth, type EvaluateResult, type FitResult, type HeadConfig, type Logger,
  type RunEndReason, type ServerToClientEvents, type Weights, type Welcome,
} from '@ftl/shared';
import { BACKBONE_PATH, loadServedBackbone, serveBackbone, type ServedBackbone } from './backbone-server.js';
import type { CoordinatorConfig } from './config.js';
import { exportGlobalModel } from './export-model.js';
import { tokenMatches } from './client-tokens.js';
import { RoundCollector } from './round-collector.js';
import type { Store } from './store/store.js';
import type { RoundRecord } from './round-table.js';

type FtlServer = Server<ClientToServerEvents, ServerToClientEvents>;
type FtlSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

interface ClientEntry {
  id: string;
  socket: FtlSocket;
  ready?: { numTrain: number; numVal: number };
}

/** The round's local training settings: the learning rate decayed per round, epochs from the schedule. */
export function scheduledFit(fit: CoordinatorConfig['fit'], schedule: CoordinatorConfig['schedule'], round: number): CoordinatorConfig['fit'] {
  const epochs = schedule.epochs.filter((s) => s.fromRound <= round).at(-1)?.epochs ?? fit.epochs;
  return { ...fit, epochs, learningRate: fit.learningRate * schedule.lrDecay ** (round - 1) };
}

/** The acknowledgement callback of an inbound event, or a no-op when the sender asked for none. */
function replyTo(ack: unknown): (answer: Ack) => void {
  return typeof ack === 'function' ? (ack as (answer: Ack) => void) : () => {};
}

/** One client's post-training personalization report. */
export interface PersonalizationRecord {
  clientId: string;
  numExamples: number;
  globalAccuracy: number;
  personalAccuracy: number;
}

/** What a finished run returns. */
export interface RunSummary {
  runId: string;
  reason: RunEndReason;
  rounds: RoundRecord[];
  weights: Weights;
  modelVersion: number;
  exportDir?: string;
  /** Present when `personalizeEpochs` > 0. */
  personalization?: PersonalizationRecord[];
  /** With early stopping: the round whose global head `weights` (and the export) holds. */
  bestRound?: number;
}

/** A fit update that passed every check, kept for aggregation. */
interface AcceptedUpdate {
  values: Float32Array;
  numExamples: number;
  loss: number;
}

/**
 * The coordinator: serves the backbone over HTTP, talks to clients over socket.io (msgpackr frames),
 * and runs a federated run of `rounds` rounds with sample-weighted FedAvg over the head's weights.
 *
 * @example
 * const c = await Coordinator.create(config, log);
 * const { url } = await c.listen();
 * const summary = await c.run((r) => console.log(formatRoundRow(r, config.rounds)));
 * await c.close();
 */
export class Coordinator {
  private readonly http: HttpServer;
  private readonly io: FtlServer;
  private readonly clients = new Map<string, ClientEntry>();
  private readonly bytes: ByteCounter = { sent: 0, received: 0 };
  private fitRound?: RoundCollector<FitResult & { decoded: AcceptedUpdate }>;
  private evalRound?: RoundCollector<EvaluateResult>;
  private personalizeRound?: RoundCollector<PersonalizeResult>;
  private aggregator?: RoundAggregator;
  private readonly strategy: Strategy;
  private readyWaiters: Array<() => void> = [];
  private global: Weights;
  private modelVersion = 0;
  private stopping = false;

  private constructor(
    readonly config: CoordinatorConfig,
    private readonly backbone: ServedBackbone,
    readonly head: HeadConfig,
    private readonly log: Logger,
    /** Where runs, rounds and checkpoints persist; without one the run lives in memory only. */
    private readonly store?: Store,
  ) {
    const initial = createHead(head, config.seed);
    const layers = initial.layers.map((l) => l.name);
    const unknown = config.localLayers.filter((l) => !layers.includes(l));
    if (unknown.length > 0 || config.localLayers.length >= layers.length) {
      throw new FtlError(ErrorCode.InvalidConfig, `--local-layers must name some but not all head layers (${layers.join(', ')}); got ${config.localLayers.join(', ')}`);
    }
    this.global = getTrainableWeights(initial, config.localLayers);
    initial.dispose();
    this.strategy = createStrategy(config.strategy, {
      fractionFit: config.fractionFit, minFitClients: config.minFitClients, sampleWeightCap: config.sampleWeightCap, seed: config.seed,
    });
    const modelBytes = specsSize(this.global.specs) * 4;
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      if (!serveBackbone(this.backbone, req, res)) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
      }
    };
    this.http = config.tls ? createHttpsServer({ cert: config.tls.cert, key: config.tls.key }, handle) : createHttpServer(handle);
    this.io = new Server(this.http, {
      parser: createMsgpackParser(this.bytes),
      // One head update plus envelope; anything larger is refused by engine.io before it is buffered.
      maxHttpBufferSize: modelBytes * 2 + 64 * 1024,
      serveClient: false,
      pingInterval: 5000,
      pingTimeout: 10000,
    });
    // Every refusal happens here, before `connection`: a refused client never receives a model byte.
    this.io.use((socket, next) => {
      const refuse = (reason: ConnectRefusal, message: string) => {
        const e = new Error(message) as Error & { data: { reason: ConnectRefusal } };
        e.data = { reason };
        this.log.warn('connection-refused', { reason, detail: message });
        next(e);
      };
      let auth: HandshakeAuth;
      try {
        auth = parseHandshakeAuth(socket.handshake.auth);
      } catch (err) {
        return refuse((err as FtlError).code === ErrorCode.ProtocolMismatch ? 'protocol-mismatch' : 'malformed-handshake', (err as Error).message);
      }
      if (this.config.requireAuth) {
        const known = this.store?.getClient(auth.name);
        if (!known || known.revoked || !auth.token || !tokenMatches(auth.token, known.tokenHash)) {
          return refuse('unauthorized', `client "${auth.name}" is unknown, revoked or gave a wrong token; ask the operator for a token`);
        }
        this.store?.touchClient(auth.name);
      }
      next();
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
  }

  /** Loads the backbone, sizes the head from its feature layer and prepares the servers. */
  static async create(config: CoordinatorConfig, log: Logger, store?: Store): Promise<Coordinator> {
    if (config.requireAuth && !store) {
      throw new FtlError(ErrorCode.InvalidConfig, '--require-auth checks client tokens in the database: give --db too');
    }
    if (!config.requireAuth) log.warn('auth-disabled', { detail: 'any client may join; use --require-auth with tokens from "clients add"' });
    const backbone = await loadServedBackbone(config.backboneDir, config.featureLayer);
    const { featureDim } = backbone;
    const head: HeadConfig = {
      featureDim, hidden: config.hidden, classes: config.classes.length,
      ...(config.l2 > 0 ? { l2: config.l2 } : {}), ...(config.dropout > 0 ? { dropout: config.dropout } : {}),
    };
    log.info('backbone', { dir: config.backboneDir, sha256: backbone.sha256, featureLayer: backbone.featureLayer, featureDim });
    return new Coordinator(config, backbone, head, log.child({ run: config.runId }), store);
  }

  /** Starts listening; resolves with the bound port and base URL. */
  async listen(): Promise<{ port: number; url: string }> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.config.port, this.config.host, () => resolve());
    });
    const { port } = this.http.address() as AddressInfo;
    const scheme = this.config.tls ? 'https' : 'http';
    const url = `${scheme}://${this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host}:${port}`;
    this.log.info('listening', { url });
    return { port, url };
  }

  /** Ids of connected clients whose features are ready. */
  readyClients(): string[] {
    return [...this.clients.values()].filter((c) => c.ready).map((c) => c.id).sort();
  }

  private onConnection(socket: FtlSocket): void {
    const { name } = parseHandshakeAuth(socket.handshake.auth);
    const previous = this.clients.get(name);
    if (previous) {
      this.log.info('client-replaced', { client: name });
      previous.socket.disconnect(true);
    }
    const entry: ClientEntry = { id: name, socket };
    this.clients.set(name, entry);
    this.log.info('client-connected', { client: name, clients: this.clients.size });
    const welcome: Welcome = {
      protocol: PROTOCOL_VERSION,
      runId: this.config.runId,
      clientId: name,
      backbone: {
        path: BACKBONE_PATH,
        files: this.backbone.files.map((f) => f.name),
        sha256: this.backbone.sha256,
        featureLayer: this.backbone.featureLayer,
      },
      head: this.head,
      classes: [...this.config.classes],
      localLayers: [...this.config.localLayers],
    };
    socket.emit('welcome', welcome);

    socket.on('ready', (raw: unknown, ack: unknown) => {
      const reply = replyTo(ack);
      try {
        const ready = parseReady(raw);
        if (ready.runId !== this.config.runId) {
          reply({ accepted: false, reason: 'unknown-run', message: `run "${ready.runId}" is not "${this.config.runId}"` });
          return;
        }
        entry.ready = { numTrain: ready.numTrain, numVal: ready.numVal };
        this.log.info('client-ready', { client: name, train: ready.numTrain, val: ready.numVal, ready: this.readyClients().length });
        reply({ accepted: true });
        this.readyWaiters.forEach((w) => w());
      } catch (err) {
        reply(rejectionFor(err));
      }
    });

    socket.on('fit-result', (raw: unknown, ack: unknown) => {
      const answer = this.answer(name, raw, this.fitRound, parseFitResult, (msg) => ({ ...msg, decoded: this.checkUpdate(name, msg) }));
      if (!answer.accepted) this.log.warn('update-rejected', { client: name, reason: answer.reason, detail: answer.message });
      replyTo(ack)(answer);
    });

    socket.on('evaluate-result', (raw: unknown, ack: unknown) => {
      const answer = this.answer(name, raw, this.evalRound, parseEvaluateResult, (msg) => msg);
      if (!answer.accepted) this.log.warn('evaluation-rejected', { client: name, reason: answer.reason, detail: answer.message });
      replyTo(ack)(answer);
    });

    socket.on('personalize-result', (raw: unknown, ack: unknown) => {
      replyTo(ack)(this.answer(name, raw, this.personalizeRound, parsePersonalizeResult, (msg) => msg));
    });

    socket.on('failure', (raw: unknown) => {
      try {
        const f = parseClientFailure(raw);
        this.log.warn('client-failure', { client: name, stage: f.stage, round: f.round, detail: f.message });
        const round = f.stage === 'fit' ? this.fitRound : f.stage === 'evaluate' ? this.evalRound : this.personalizeRound;
        if (round && round.target.round === f.round) round.fail(name, `client failed: ${f.message}`);
      } catch (err) {
        this.log.warn('malformed-failure', { client: name, detail: (err as Error).message });
      }
    });

    socket.on('disconnect', (reason) => {
      if (this.clients.get(name)?.socket !== socket) return; // replaced by a newer connection
      this.clients.delete(name);
      this.log.info('client-disconnected', { client: name, reason, clients: this.clients.size });
      for (const round of [this.fitRound, this.evalRound, this.personalizeRound]) round?.fail(name, `disconnected (${reason})`);
    });
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

  /** Content checks of an update against the global model: tensor names, shapes, byte length, finiteness. */
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
    const update = { values: weights.values, numExamples: msg.numExamples, loss: msg.metrics.loss };
    // Streaming: the strategy folds the update in now, so a round holds one model, not one per client.
    this.aggregator?.add({ clientId, ...update });
    return update;
  }

  private async waitForClients(): Promise<void> {
    const { minClients, waitTimeoutMs } = this.config;
    if (this.readyClients().length >= minClients) return;
    this.log.info('waiting-for-clients', { need: minClients, ready: this.readyClients().length });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiters = [];
        reject(new FtlError(
          ErrorCode.Timeout,
          `only ${this.readyClients().length} of the ${minClients} clients needed were ready after ${waitTimeoutMs / 1000} s; ` +
            'start more clients or lower --min-clients',
        ));
      }, waitTimeoutMs);
      this.readyWaiters.push(() => {
        if (this.readyClients().length >= minClients) {
          clearTimeout(timer);
          this.readyWaiters = [];
          resolve();
        }
      });
    });
  }

  /**
   * Runs the whole federated run: waits for clients, trains `rounds` rounds, evaluates each new global
   * head on the clients, exports the global model and tells clients the run is over.
   */
  async run(onRound?: (r: RoundRecord) => void): Promise<RunSummary> {
    const { rounds, runId } = this.config;
    const records = this.resume();
    let reason: RunEndReason = 'completed';
    let personalization: PersonalizationRecord[] | undefined;
    // Best round by federated validation loss (early stopping). Not persisted: after a restart it is
    // tracked again from the resumed rounds on.
    let best: { round: number; loss: number; weights: Weights } | undefined;
    try {
      await this.waitForClients();
      for (let round = records.length + 1, attempt = 1; round <= rounds && !this.stopping; round++) {
        const { record, participants, rejected } = await this.runRound(round);
        if (record.status === 'no-quorum' && attempt <= this.config.quorumRetries) {
          // The global model is unchanged; try the same round again with whoever is ready then.
          this.store?.appendEvent(runId, 'round-retry', { round, attempt, accepted: record.accepted, need: this.config.minFitClients });
          this.log.warn('round-retry', { round, attempt, of: this.config.quorumRetries });
          onRound?.(record);
          attempt++;
          round--;
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
            `round ${round} got ${record.accepted} accepted updates, below --min-fit-clients ${this.config.minFitClients}, ` +
              `after ${this.config.quorumRetries} retries; the run ends with the global model of round ${round - 1}`,
          );
        } else {
          this.store?.commitRound(runId, { record, participants, rejected }, {
            modelVersion: this.modelVersion, specs: this.global.specs, values: this.global.values, strategyState: this.strategy.state(),
          });
        }
        records.push(record);
        onRound?.(record);
        if (this.config.patience > 0) {
          if (Number.isFinite(record.valLoss) && (best === undefined || record.valLoss < best.loss)) {
            best = { round, loss: record.valLoss, weights: { specs: this.global.specs, values: this.global.values.slice() } };
          }
          if (best && round - best.round >= this.config.patience) {
            this.log.info('early-stop', { round, bestRound: best.round, bestValLoss: best.loss.toFixed(4) });
            this.store?.appendEvent(runId, 'early-stop', { round, bestRound: best.round, bestValLoss: best.loss });
            break;
          }
        }
      }
      // With early stopping the run ends on its best global head, not its last.
      if (best) this.global = best.weights;
      if (this.stopping) reason = 'stopped';
      else if (this.config.personalizeEpochs > 0) personalization = await this.personalize(records.length);
    } catch (err) {
      reason = 'failed';
      this.store?.setRunStatus(runId, 'failed');
      this.store?.appendEvent(runId, 'run-failed', { message: (err as Error).message });
      this.io.emit('run-end', { protocol: PROTOCOL_VERSION, runId, reason, message: (err as Error).message });
      throw err;
    }
    this.store?.setRunStatus(runId, reason);
    this.store?.appendEvent(runId, 'run-end', { reason, rounds: records.length, modelVersion: this.modelVersion });
    let exportDir: string | undefined;
    if (this.config.exportDir) {
      exportDir = this.config.exportDir;
      const { digest } = await exportGlobalModel({
        backbone: this.backbone, head: this.head, weights: this.global,
        dir: exportDir, localLayers: this.config.localLayers,
        meta: {
          runId, classes: this.config.classes, backboneSha256: this.backbone.sha256, featureLayer: this.backbone.featureLayer,
          strategy: this.config.strategy, localLayers: this.config.localLayers, modelVersion: this.modelVersion, rounds: records,
          ...(best ? { bestRound: best.round } : {}),
        },
      });
      this.log.info('exported', { dir: exportDir, sha256: digest });
    }
    this.io.emit('run-end', { protocol: PROTOCOL_VERSION, runId, reason });
    await this.drain(3000);
    return {
      runId, reason, rounds: records, weights: this.global, modelVersion: this.modelVersion, ...(best ? { bestRound: best.round } : {}),
      ...(exportDir ? { exportDir } : {}), ...(personalization ? { personalization } : {}),
    };
  }

  /**
   * Creates the run in the store, or, when the store already has it (a restart), restores the global
   * weights, model version and strategy state from its newest valid checkpoint and returns the rounds
   * already done, so the run continues with the next one.
   */
  private resume(): RoundRecord[] {
    const { runId } = this.config;
    if (!this.store) return [];
    const existing = this.store.getRun(runId);
    if (!existing) {
      this.store.createRun(runId, this.config);
      this.store.setRunStatus(runId, 'running');
      this.store.appendEvent(runId, 'run-start', { rounds: this.config.rounds, strategy: this.config.strategy.name });
      return [];
    }
    const done = this.store.listRounds(runId).map((r) => r.record);
    const checkpoint = this.store.latestCheckpoint(runId, (round, why) => this.log.warn('checkpoint-corrupt', { round, why }));
    if (checkpoint) {
      assertSameSpecs(checkpoint.specs, this.global.specs);
      this.global = { specs: this.global.specs, values: checkpoint.values };
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
    this.store.appendEvent(runId, 'run-resumed', { afterRound: done.length, modelVersion: this.modelVersion });
    this.log.info('run-resumed', { afterRound: done.length, modelVersion: this.modelVersion });
    return done;
  }

  private async runRound(round: number): Promise<{ record: RoundRecord; participants: string[]; rejected: Array<{ clientId: string; reason: string; message: string }> }> {
    const t0 = performance.now();
    const in0 = this.bytes.received;
    const out0 = this.bytes.sent;
    const { runId, fit, roundDeadlineMs, minFitClients } = this.config;
    const selected = this.strategy.configureFit(round, this.readyClients());
    const log = this.log.child({ round });
    log.info('round-start', { selected: selected.length, ready: this.readyClients().length, strategy: this.strategy.name });

    const target = { runId, round, modelVersion: this.modelVersion, expected: selected };
    const fitRound = new RoundCollector<FitResult & { decoded: AcceptedUpdate }>(target, roundDeadlineMs);
    this.fitRound = fitRound;
    this.aggregator = this.strategy.beginAggregation(round, this.global.values);
    const weights = encodeWeights(this.global);
    const extras = this.strategy.fitExtras(round);
    selected.forEach((id, i) => {
      const socket = this.clients.get(id)?.socket;
      if (!socket) return fitRound.fail(id, 'disconnected before the round started');
      socket.emit('fit', {
        protocol: PROTOCOL_VERSION, runId, round, modelVersion: this.modelVersion, weights,
        config: { ...scheduledFit(fit, this.config.schedule, round), seed: deriveSeed(this.config.seed, round, i), ...extras },
      });
    });
    const collected = await fitRound.settled;
    this.fitRound = undefined;
    const aggregator = this.aggregator;
    this.aggregator = undefined;
    for (const [id, why] of collected.failures) log.warn('client-missed-round', { client: id, why });

    const updates = [...collected.results.values()].map((r) => r.decoded);
    let status: RoundRecord['status'] = updates.length >= minFitClients ? 'aggregated' : 'no-quorum';
    let trainLoss = NaN;
    if (status === 'aggregated') {
      const next = aggregator.finish();
      const bad = next ? firstNonFinite(next) : -1;
      if (next === null || bad >= 0) {
        status = 'kept';
        log.warn('aggregate-kept-previous', { strategy: this.strategy.name, why: next === null ? 'no aggregate' : `value ${bad} is not finite` });
      } else {
        this.global = { specs: this.global.specs, values: next };
        this.modelVersion++;
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
    const record: RoundRecord = {
      round, status, selected: selected.length, accepted: updates.length, rejected: collected.rejected.length,
      failed: collected.failures.size, trainLoss, valLoss: evaluation.loss, valAccuracy: evaluation.accuracy,
      evalClients: evaluation.clients, bytesIn: this.bytes.received - in0, bytesOut: this.bytes.sent - out0,
      seconds: (performance.now() - t0) / 1000, modelVersion: this.modelVersion,
    };
    log.info('round-end', { status, accepted: record.accepted, valAccuracy: record.valAccuracy.toFixed(4) });
    return {
      record,
      participants: [...collected.results.keys()],
      rejected: collected.rejected.map((r) => ({ clientId: r.clientId, reason: r.ack.reason, message: r.ack.message })),
    };
  }

  private async evaluateRound(round: number): Promise<{ loss: number; accuracy: number; clients: number }> {
    const { runId, roundDeadlineMs } = this.config;
    const expected = this.strategy.configureEvaluate(round, this.readyClients());
    const evalRound = new RoundCollector<EvaluateResult>({ runId, round, modelVersion: this.modelVersion, expected }, roundDeadlineMs);
    this.evalRound = evalRound;
    const weights = encodeWeights(this.global);
    for (const id of expected) {
      this.clients.get(id)?.socket.emit('evaluate', { protocol: PROTOCOL_VERSION, runId, round, modelVersion: this.modelVersion, weights });
    }
    const { results } = await evalRound.settled;
    this.evalRound = undefined;
    return this.strategy.aggregateEvaluate(round, [...results.values()]) ?? { loss: NaN, accuracy: NaN, clients: 0 };
  }

  /** After the last round: every ready client fine-tunes the final global head and reports both accuracies. */
  private async personalize(round: number): Promise<PersonalizationRecord[]> {
    const { runId, roundDeadlineMs, fit, personalizeEpochs } = this.config;
    const expected = this.readyClients();
    const collector = new RoundCollector<PersonalizeResult>({ runId, round, modelVersion: this.modelVersion, expected }, roundDeadlineMs);
    this.personalizeRound = collector;
    const weights = encodeWeights(this.global);
    expected.forEach((id, i) => {
      this.clients.get(id)?.socket.emit('personalize', {
        protocol: PROTOCOL_VERSION, runId, round, modelVersion: this.modelVersion, weights,
        config: { ...fit, epochs: personalizeEpochs, seed: deriveSeed(this.config.seed, round + 1, i) },
      });
    });
    const { results } = await collector.settled;
    this.personalizeRound = undefined;
    return [...results.entries()].map(([clientId, r]) => ({
      clientId, numExamples: r.numExamples, globalAccuracy: r.globalAccuracy, personalAccuracy: r.personalAccuracy,
    }));
  }

  /** Waits (bounded) for clients to leave after `run-end`, so closing does not cut the message off. */
  private async drain(timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (this.clients.size > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  /** Asks the run to stop after the current round. */
  stop(): void {
    this.stopping = true;
  }

  /** Closes every connection and the servers. */
  async close(): Promise<void> {
    for (const round of [this.fitRound, this.evalRound, this.personalizeRound]) round?.close();
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    if (this.http.listening) await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
