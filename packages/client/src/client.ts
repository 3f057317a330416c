import { createHash } from 'node:crypto';
import {
  alignShardToRun,
  backboneLayersOf,
  boundaryFeatures,
  channelStats,
  CLASS_SUMS_TENSOR,
  FEATURE_SCATTER_TENSOR,
  withinClassScatter,
  parseClassSumsInstruction,
  createTrainableNetwork,
  type TrainableNetwork,
  decodeWeights,
  deriveSeed,
  encodeWeights,
  ErrorCode,
  extractFeatures,
  FtlError,
  imageSize,
  loadBackbone,
  localLabels,
  normalizeImages,
  parseAck,
  parsePayload,
  parseEvaluateInstruction,
  parseFitInstruction,
  parseGoodbye,
  parsePersonalizeInstruction,
  parseRunEnd,
  parseWelcome,
  PROTOCOL_VERSION,
  withAugmentedCopies,
  type Ack,
  type ChannelConnector,
  type ClassSumsInstruction,
  type ClientChannel,
  type ClientShard,
  type EvaluateInstruction,
  type FitConfig,
  type FitInstruction,
  type FitMetrics,
  type SecAggDelivery,
  type SecAggDirectory,
  type SecAggInstruction,
  type SecAggUnmask,
  type PersonalizeInstruction,
  type PrivacyReport,
  type RecordPrivacy,
  type ClientToServerEvents,
  type FeatureExtractor,
  type ImageDataset,
  type LocalShard,
  type LogFields,
  type Logger,
  type ModelFile,
  type Normalization,
  type RunEnd,
  type ServerToClientEvents,
  type AckedEvent,
  type WeightSpec,
  type Weights,
  type Welcome,
} from '@ftl/shared';
import {
  compareLabels,
  encodeTable,
  parseTableEncodingMessage,
  rawTableIdentity,
  splitTypedTable,
  summarizeTable,
  typeTable,
  type RawTable,
  type TableEncodingMessage,
  type TypedTable,
} from '@ftl/shared';
import { AuditLog, type AuditKind, auditLogPath } from './audit-log.js';
import { clipForClientDp } from './client-clip.js';
import { obtainBackbone } from './backbone-cache.js';
import { describeConnectError } from './connect-error.js';
import { oneLine } from './one-line.js';
import { type DpSgdConfig, dpSchedule, noiseMultiplierOf } from './dp-sgd.js';
import { cachedFeatures } from './feature-cache.js';
import { HeadTrainer } from './head-trainer.js';
import { PrivacyLedger } from './privacy-ledger.js';
import type { ComputeTurns } from './compute-turns.js';
import { socketIoConnect } from './socketio-connect.js';
import { SecureRound, secureInput, staleSecureMessage } from './secure-aggregation.js';

type FailureStage = 'prepare' | 'fit' | 'evaluate' | 'personalize' | 'class-sums';

/** Why a site will not train a round for its privacy budget: the one-line reason and what it has spent. */
type PrivacyRefusal = { message: string; privacy: PrivacyReport | undefined };

/** What the coordinator asked for, as an answer names it: the run, the round and the model version. */
type Answered = { runId: string; round: number; modelVersion: number };

/** The envelope of this site's answer to `msg`: this side's protocol, and the run, round and model version it answers. */
function answerTo(msg: Answered): { protocol: typeof PROTOCOL_VERSION } & Answered {
  return { protocol: PROTOCOL_VERSION, runId: msg.runId, round: msg.round, modelVersion: msg.modelVersion };
}

/** Options of one client node. */
export interface ClientOptions {
  /** The coordinator's base URL, e.g. `http://127.0.0.1:8080`. */
  serverUrl: string;
  /** This client's stable name (letters, digits, `.`, `_`, `-`). */
  name: string;
  /**
   * Local data, labelled with the site's own names (mapped to the run's classes on welcome); never leaves
   * this process. Give this (images) or `table`.
   */
  shard?: LocalShard;
  /**
   * A table site's CSV as read (`--table`): read against the run's columns on welcome (a bad cell stops the
   * site, naming its line and column), summarised in `ready`, and encoded when the run's encoding arrives.
   */
  table?: RawTable;
  /** How a table site's rows are split into training and validation (default: seed 1, 15 % validation). */
  tableSplit?: { seed: number; valFraction?: number; limit?: number };
  /** Where the backbone is cached, per digest. */
  cacheDir: string;
  /** The most bytes the feature cache (`<cacheDir>/features/`) may hold; the least recently used go first. None: no limit. */
  featureCacheMaxBytes?: number;
  /**
   * Where the site keeps its privacy ledger (default: `cacheDir`), so ε adds up across runs on the same
   * data; a simulation gives each experiment its own, as each stands for a separate study.
   */
  ledgerDir?: string;
  /** Refuse any backbone whose digest is not this. */
  pinnedSha256?: string;
  /** The token the operator issued for `name`, sent in the handshake. */
  token?: string;
  /** CA certificate(s) (PEM) to trust when the coordinator serves https/wss. */
  ca?: Buffer;
  log: Logger;
  /** How long to wait for an acknowledgement before counting the message lost (default 30 s). */
  ackTimeoutMs?: number;
  /** Reconnection attempts before giving up (default 20). */
  reconnectionAttempts?: number;
  /**
   * Research hook: rewrites the trained weights before they are sent, to simulate a faulty or hostile
   * site (e.g. sign-flipped, scaled updates). Simulations only; the CLI never sets it.
   */
  transformUpdate?: (trained: Weights, global: Weights) => Weights;
  /**
   * Stay connected when a run ends and take part in the next run the coordinator starts (a long-lived
   * site node under `ftl-coordinator serve`). `run()` then settles only on `close()` or a fatal error.
   */
  stay?: boolean;
  /** Abandon the backbone download after this long without a byte (default 120 s). */
  backboneIdleTimeoutMs?: number;
  /** Refuse a backbone whose files have more bytes than this together (default 512 MiB). */
  backboneMaxBytes?: number;
  /** Long feature extraction and training log their progress at most this often (default 5 s; 0: every batch or epoch). */
  progressEveryMs?: number;
  /**
   * Clients sharing one thread (a simulation's sites) pass the same instance, so their training,
   * evaluation and feature extraction take turns and the thread keeps answering pings between batches.
   */
  turns?: ComputeTurns;
  /**
   * Opens the live channel to the coordinator (default {@link socketIoConnect}: socket.io over
   * WebSocket). A simulation passes an in-process hub's `connect` (`createInprocHub`) to run without
   * sockets; the backbone is still fetched over HTTP from `serverUrl`.
   */
  connect?: ChannelConnector;
  /**
   * This site's own ε budget for its training data, at the δ each DP run names (`--dp-budget`): a round
   * that would take the ε its ledger has recorded past it is refused, and so is any work that would
   * release the data without record-level DP (a round without DP, class sums, normalisation statistics).
   * Without one the site trains whatever DP rounds come, still accounting and reporting its ε.
   */
  dpBudget?: number;
  /**
   * Whether this site answers a run's `class-sums` request (default true). With false (`--no-class-sums`)
   * it sends a `failure` saying why instead: its per-class feature sums and scatter never leave, the
   * coordinator starts the head from the other sites' statistics (or at random when none answer), and the
   * site trains the rounds as usual.
   */
  classSums?: boolean;
  /**
   * Research hook: makes DP-SGD's sampling and noise repeat, derived per round from this seed. Without it
   * they come from the system's secret randomness, which is what privacy needs; the CLI never sets it, and
   * it is never the coordinator's round seed. Simulations only.
   */
  dpSeed?: number;
  /**
   * This site's audit log: a line for every message it sends the coordinator, chained by hashes
   * (`AuditLog`); a path, or `false` for none (default `<cacheDir>/audit/<name>.jsonl`).
   */
  auditLog?: string | false;
}

const DEFAULT_PROGRESS_EVERY_MS = 5000;

/** A logger of `event` that writes at most once per `everyMs`: progress of long local work. */
function throttled(log: Logger, event: string, everyMs: number): (fields: LogFields) => void {
  let last = performance.now();
  return (fields) => {
    const now = performance.now();
    if (now - last < everyMs) return;
    last = now;
    log.info(event, fields);
  };
}

/** Both splits with every image normalised per channel. */
function normalizeShard(shard: ClientShard, n: Normalization): ClientShard {
  // One statistic per channel, or per value position (scope "feature"): the stride is the statistics' length.
  const norm = (ds: ImageDataset): ImageDataset => {
    if (n.shift.length !== ds.channels && n.shift.length !== imageSize(ds)) {
      throw new FtlError(
        ErrorCode.InvalidMessage,
        `the run's normalisation has ${n.shift.length} values; this site's images have ${ds.channels} channels and ${imageSize(ds)} values`,
      );
    }
    return { ...ds, images: normalizeImages(ds.images, n.shift.length, n) };
  };
  return { train: norm(shard.train), val: norm(shard.val) };
}

/** A table site's data before the run's encoding arrives: no rows yet. */
const EMPTY_DATASET: ImageDataset = { images: new Float32Array(0), labels: new Int32Array(0), n: 0, height: 1, width: 1, channels: 1, classes: [] };
const EMPTY_SHARD: LocalShard = { train: EMPTY_DATASET, val: EMPTY_DATASET };

/** The label names of a table site's rows, in the order labels are compared. */
function tableLabels(table: { train: TypedTable; val: TypedTable }): string[] {
  return [...new Set([...table.train.labels, ...table.val.labels])].sort(compareLabels);
}

/** @throws FtlError(INVALID_MESSAGE) when a table site is asked to work before the run's encoding came. */
function requireEncoded(p: Prepared): void {
  if (p.table && p.table.encoding === undefined) {
    throw new FtlError(ErrorCode.InvalidMessage, `run ${p.runId} asked for work before it sent its table encoding; this site has no vectors yet`);
  }
}

/** A seed for this site's augmentation in a run: the same on every restart, different between sites. */
function augmentSeed(runId: string, name: string): number {
  return createHash('sha256').update(`${runId}\u0000${name}`).digest().readUInt32LE(0);
}

/** Where a trainer's feature vectors come from: the cache or the backbone, for one split of the data. */
type FeatureSource = (data: ImageDataset) => Promise<{ features: Float32Array; hit: boolean }>;

/** A trainer of the run's head (and `network`'s unfrozen layers) on this site's features; `hit`: both splits were cached. */
async function trainerOnFeatures(
  welcome: Welcome,
  shard: ClientShard,
  features: FeatureSource,
  network?: TrainableNetwork,
): Promise<{ trainer: HeadTrainer; hit: boolean }> {
  const [train, val] = [await features(shard.train), await features(shard.val)];
  const data = { trainFeatures: train.features, trainLabels: shard.train.labels, valFeatures: val.features, valLabels: shard.val.labels };
  return { trainer: new HeadTrainer(welcome.head, data, welcome.localLayers, network), hit: train.hit && val.hit };
}

/** A run's state on this client: the features are computed once per run, backbone and trainable set. */
interface Prepared {
  runId: string;
  sha256: string;
  welcome: Welcome;
  /** The verified backbone files, to build a fine-tuning trainer when the round's trainable set changes. */
  files: ModelFile[];
  /** The local data in the run's label order. */
  shard: LocalShard;
  /** Undefined until the first round when the run normalises inputs (the features wait for its statistics). */
  trainer?: HeadTrainer;
  /** What `trainer` was built for: its unfrozen backbone layers, joined (empty: head only), and the normalisation. */
  trainable?: string;
  /** A table site: its rows read against the run's columns and split; `shard` holds them once `encoding` (as JSON) came. */
  table?: { train: TypedTable; val: TypedTable; encoding?: string };
}

/**
 * A client node: connects to the coordinator, fetches and verifies the backbone, extracts features from
 * its local data once, then trains and evaluates the head whenever a round asks. Raw data and features
 * never leave it; only head weights, sample counts and metrics do.
 *
 * @example
 * const client = new FtlClient({ serverUrl, name: 'hospital-a', shard, cacheDir: '.ftl/cache', log });
 * const end = await client.run(); // resolves when the coordinator ends the run
 */
export class FtlClient {
  private socket?: ClientChannel;
  private prepared?: Prepared;
  /** What this site has spent on its training data, on disk beside the feature cache; read when `run()` starts. */
  private ledger?: PrivacyLedger;
  /** Where every message this site sends is recorded before it leaves; undefined when turned off. */
  private audit?: AuditLog;
  /** The record-level DP mechanism of the latest training instruction, per run: what the audit log records as in force. */
  private inForce?: { runId: string; privacy: RecordPrivacy | undefined };
  /** The secure-aggregation round this site advertised keys for and has not finished (secure-aggregation.ts). */
  private secure?: SecureRound;
  // Messages are handled one at a time, in order, so a round never overlaps the feature extraction.
  private queue: Promise<void> = Promise.resolve();
  // Settles a pending run() when this side closes (the only way a `stay` client's run() ends).
  private closed?: () => void;

  constructor(private readonly options: ClientOptions) {
    if ((options.shard === undefined) === (options.table === undefined)) {
      throw new FtlError(ErrorCode.InvalidConfig, 'a client holds images (shard) or a table (table): give exactly one');
    }
  }

  /** Connects and takes part in the run until the coordinator ends it. Rejects on a fatal error. */
  run(): Promise<RunEnd> {
    const { serverUrl, name, log } = this.options;
    const attempts = this.options.reconnectionAttempts ?? 20;
    return new Promise<RunEnd>((resolve, reject) => {
      // A ledger that cannot be read stops the site before it connects: its spent ε would be unknown.
      try {
        if (!this.ledger) {
          // A table's ledger is keyed by its rows as read: each run encodes them differently, the records are the same.
          const data = this.options.shard?.train ?? rawTableIdentity(this.options.table!);
          this.ledger = PrivacyLedger.open(this.options.ledgerDir ?? this.options.cacheDir, data);
          if (this.ledger.entries.length > 0) log.info('privacy-ledger', { file: this.ledger.path, entries: this.ledger.entries.length });
        }
        // So is an audit log that cannot be appended to: the messages would leave no trace.
        const { auditLog, cacheDir } = this.options;
        if (!this.audit && auditLog !== false) {
          const audit = new AuditLog(auditLog ?? auditLogPath(cacheDir, name));
          audit.check();
          this.audit = audit;
        }
      } catch (err) {
        reject(err);
        return;
      }
      this.closed = () =>
        resolve({ protocol: PROTOCOL_VERSION, runId: this.prepared?.runId ?? '', reason: 'stopped', message: 'closed by the client' });
      const socket = (this.options.connect ?? socketIoConnect)(serverUrl, {
        auth: { protocol: PROTOCOL_VERSION, name, ...(this.options.token ? { token: this.options.token } : {}) },
        ...(this.options.ca ? { ca: this.options.ca.toString('utf8') } : {}),
        reconnectionAttempts: attempts,
      });
      this.socket = socket;
      const fatal = (err: unknown) => {
        socket.disconnect();
        this.dispose();
        reject(err);
      };
      // A failed welcome leaves the client without features: nothing later can work, so it is fatal.
      const enqueue = (task: () => Promise<void>, alwaysFatal = false) => {
        this.queue = this.queue.then(task).catch((err: unknown) => {
          if (alwaysFatal || (err instanceof FtlError && isFatal(err))) fatal(err);
          else log.error('task-failed', { detail: (err as Error).message });
        });
      };

      let failures = 0;
      let lastFailure = '';
      socket.on('connect', () => {
        failures = 0; // a later drop gets its full count of retries again, as socket.io's own counter does
        log.info('connected', { server: serverUrl });
      });
      socket.on('disconnect', (reason) => log.info('disconnected', { reason }));
      socket.on('connect_error', (err) => {
        // A refusal by the coordinator's middleware is final; socket.io does not retry it.
        if (err.data?.reason) {
          const code = err.data.reason === 'unauthorized' ? ErrorCode.Unauthorized : ErrorCode.ProtocolMismatch;
          return fatal(new FtlError(code, `coordinator refused the connection (${err.data.reason}): ${err.message}`));
        }
        // Engine.io says "websocket error" whatever the cause: name it, and stop at once when retrying cannot help.
        const failure = describeConnectError(err, serverUrl, this.options.ca !== undefined);
        if (failure.final) return fatal(new FtlError(ErrorCode.InvalidConfig, failure.message, { cause: err }));
        failures++;
        lastFailure = failure.message;
        log.warn('connect-failed', { detail: failure.message, next: failures <= attempts ? `retrying (${failures} of ${attempts})` : 'giving up' });
      });
      socket.io.on('reconnect_failed', () =>
        fatal(
          new FtlError(
            ErrorCode.Timeout,
            `could not reach the coordinator at ${serverUrl} after ${failures} attempts: ${lastFailure || 'no answer'}`,
          ),
        ),
      );

      // Every message from the coordinator is parsed inside this one boundary: a malformed one is logged and
      // dropped, never thrown out of a socket listener (which would end the process).
      const on = <T>(event: keyof ServerToClientEvents, parse: (raw: unknown) => T, handle: (msg: T) => void) => {
        socket.on(event, (raw: unknown) => {
          let msg: T;
          try {
            msg = parse(raw);
          } catch (err) {
            log.warn('message-ignored', { event, detail: oneLine(err instanceof Error ? err.message : String(err)) });
            return;
          }
          try {
            handle(msg);
          } catch (err) {
            log.error('handler-failed', { event, detail: oneLine(err instanceof Error ? err.message : String(err)) });
          }
        });
      };
      on('goodbye', parseGoodbye, (bye) => {
        log.warn('goodbye', { reason: bye.reason, detail: oneLine(bye.message) });
        if (bye.reason === 'shutdown') {
          // A restarted coordinator resumes its run: come back (socket.io does not retry a server-side close).
          socket.once('disconnect', () => setTimeout(() => socket.connect(), 1000));
        } else {
          const code = bye.reason === 'revoked' ? ErrorCode.Unauthorized : ErrorCode.Conflict;
          fatal(new FtlError(code, `the coordinator closed this connection (${bye.reason}): ${oneLine(bye.message)}`));
        }
      });
      on('welcome', parseWelcome, (welcome) =>
        enqueue(async () => {
          try {
            await this.onWelcome(welcome);
          } catch (err) {
            // The site cannot take part and is about to leave: its own error goes first, so the
            // coordinator shows the operator why this site failed instead of only that it left.
            try {
              this.sendFailure('prepare', { runId: welcome.runId, round: 0, modelVersion: 0 }, err instanceof Error ? err.message : String(err));
              await closedByPeer(socket, PREPARE_FAILURE_GRACE_MS);
            } catch (cause) {
              log.warn('failure-not-sent', { detail: oneLine(cause instanceof Error ? cause.message : String(cause)) });
            }
            throw err;
          }
        }, true),
      );
      on('fit', parseFitInstruction, (msg) => enqueue(() => this.onFit(msg)));
      on('evaluate', parseEvaluateInstruction, (msg) => enqueue(() => this.onEvaluate(msg)));
      on('personalize', parsePersonalizeInstruction, (msg) => enqueue(() => this.onPersonalize(msg)));
      on('class-sums', parseClassSumsInstruction, (msg) => enqueue(() => this.onClassSums(msg)));
      // Secure aggregation's phases after training, in order with everything else.
      on(
        'secagg-directory',
        (raw) => parsePayload('secagg-directory', raw),
        (msg) => enqueue(() => this.onSecure({ event: 'secagg-directory', msg })),
      );
      on(
        'secagg-delivery',
        (raw) => parsePayload('secagg-delivery', raw),
        (msg) => enqueue(() => this.onSecure({ event: 'secagg-delivery', msg })),
      );
      on(
        'secagg-unmask',
        (raw) => parsePayload('secagg-unmask', raw),
        (msg) => enqueue(() => this.onSecure({ event: 'secagg-unmask', msg })),
      );
      // Without its encoding a table site has nothing to train on: a failure here ends it, as a failed welcome does.
      on('table-encoding', parseTableEncodingMessage, (msg) => enqueue(() => this.onTableEncoding(msg), true));
      on('run-end', parseRunEnd, (end) => {
        if (this.prepared && end.runId !== this.prepared.runId) return;
        log.info('run-end', { run: end.runId, reason: end.reason });
        enqueue(async () => {
          if (this.options.stay) {
            // Features stay cached on disk; the trainer's tensors are freed until the next welcome.
            this.dispose();
            log.info('waiting-for-next-run', {});
            return;
          }
          socket.disconnect();
          this.dispose();
          resolve(end);
        });
      });
    });
  }

  /** Disconnects now. */
  close(): void {
    this.closed?.();
    this.socket?.disconnect();
    this.dispose();
  }

  private dispose(): void {
    this.prepared?.trainer?.dispose();
    this.prepared = undefined;
  }

  private async onWelcome(welcome: Welcome): Promise<void> {
    const { log } = this.options;
    if (this.options.dpBudget !== undefined && welcome.normalization) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `privacy budget: run ${welcome.runId} asks for the exact statistics of this site's training images (normalization ${welcome.normalization}), ` +
          `which record-level DP does not cover, and this site keeps an ε budget of ${this.options.dpBudget}; it does not join`,
      );
    }
    let p = this.prepared;
    if (!p || p.runId !== welcome.runId || p.sha256 !== welcome.backbone.sha256) {
      this.dispose();
      // A table is read against the run's columns first: a bad cell or column stops the site before any download.
      const table = this.tableFor(welcome);
      // Local labels are matched to the run's by name before any download; an unknown one is fatal.
      const aligned = table ? EMPTY_SHARD : alignShardToRun(this.options.shard!, welcome.classes);
      // Augmented copies join the training split before extraction (seeded per run and site); validation stays as it is.
      const shard =
        welcome.augment && welcome.augment.copies > 0
          ? { ...aligned, train: withAugmentedCopies(aligned.train, welcome.augment, augmentSeed(welcome.runId, this.options.name)) }
          : aligned;
      const { files } = await obtainBackbone({
        serverUrl: this.options.serverUrl,
        info: welcome.backbone,
        cacheDir: this.options.cacheDir,
        log,
        ...(this.options.pinnedSha256 ? { pinnedSha256: this.options.pinnedSha256 } : {}),
        ...(this.options.ca ? { ca: this.options.ca } : {}),
        ...(this.options.backboneIdleTimeoutMs !== undefined ? { idleTimeoutMs: this.options.backboneIdleTimeoutMs } : {}),
        ...(this.options.backboneMaxBytes !== undefined ? { maxBytes: this.options.backboneMaxBytes } : {}),
      });
      p = { runId: welcome.runId, sha256: welcome.backbone.sha256, welcome, files, shard, ...(table ? { table } : {}) };
      if (table) {
        // A table's rows become vectors only with the run's encoding, fixed from every site's summary.
        log.info('features-deferred', { run: welcome.runId, why: 'table encoding' });
      } else if (welcome.normalization || welcome.backboneTrainsFromStart) {
        // Federated normalisation: the features wait for the combined statistics, which come with round 1.
        // Backbone layers training from round 1: features at the cut would go unused; the round's own come then.
        log.info('features-deferred', {
          run: welcome.runId,
          why: welcome.normalization ? `${welcome.normalization} normalisation` : 'backbone layers train',
        });
      } else {
        p.trainer = await this.turn(() => this.headTrainer(welcome, files, shard));
        p.trainable = '';
      }
      this.prepared = p;
    }
    // Only sums, sums of squares, extremes and counts per channel leave the site, never values.
    const train = p.shard.train;
    const stats = !welcome.normalization
      ? undefined
      : welcome.normalizationScope === 'feature'
        ? channelStats({ images: train.images, channels: imageSize(train) })
        : channelStats(train);
    let ack: Ack;
    try {
      ack = await this.emitWithAck('ready', {
        protocol: PROTOCOL_VERSION,
        runId: welcome.runId,
        numTrain: p.table ? p.table.train.labels.length : p.shard.train.n,
        numVal: p.table ? p.table.val.labels.length : p.shard.val.n,
        labels: p.table ? tableLabels(p.table) : localLabels(this.options.shard!),
        ...(stats ? { stats } : {}),
        ...(p.table && welcome.table ? { table: summarizeTable(p.table.train, welcome.table) } : {}),
      });
    } catch (err) {
      // The connection dropped before the answer (a coordinator restart, a network cut): the prepared run
      // is kept, and the welcome of the next connection sends ready again. Anything else is fatal as before.
      if (this.socket?.connected) throw err;
      log.warn('ready-unacknowledged', { run: welcome.runId, detail: (err as Error).message });
      return;
    }
    if (!ack.accepted) throw new FtlError(ErrorCode.InvalidMessage, `coordinator refused ready: ${oneLine(ack.message)}`);
  }

  /**
   * A table site's rows for a tabular run: read against the run's columns (the first bad cell, a column
   * missing or extra, or a label outside the run's classes stops the site, naming where) and split into
   * training and validation as any site data is. Undefined for an image site in an image run.
   *
   * @throws FtlError(DATASET) for the table's problems; FtlError(INVALID_CONFIG) when the site's data and
   *   the run's kind differ.
   */
  private tableFor(welcome: Welcome): Prepared['table'] {
    const { table } = this.options;
    if (!welcome.table && !table) return undefined;
    if (!welcome.table) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `run ${welcome.runId} trains on images but this site holds a table (${table!.file}); start it with image data`,
      );
    }
    if (!table) throw new FtlError(ErrorCode.InvalidConfig, `run ${welcome.runId} trains on tables; start this site with --table FILE`);
    const typed = typeTable(table, welcome.table);
    const classes = new Set(welcome.classes);
    const label = welcome.table.columns.find((c) => c.role === 'label')!.name;
    const r = typed.labels.findIndex((l) => !classes.has(l));
    if (r >= 0) {
      throw new FtlError(
        ErrorCode.Dataset,
        `${typed.file} line ${typed.lines[r]}, column "${label}": label ${JSON.stringify(typed.labels[r])} is not one of the run's classes (${welcome.classes.join(', ')}); relabel the row or add the class to the run`,
      );
    }
    return splitTypedTable(typed, this.options.tableSplit ?? { seed: 1 });
  }

  /**
   * The run's table encoding (fixed by the coordinator from every site's summary): the site's rows become
   * vectors, and with them its features and trainer, as an image site's are made on welcome.
   */
  private async onTableEncoding(msg: TableEncodingMessage): Promise<void> {
    const p = this.requirePrepared(msg.runId);
    const { welcome } = p;
    if (!p.table || !welcome.table)
      throw new FtlError(ErrorCode.InvalidMessage, `run ${msg.runId} sent a table encoding, but this site holds no table`);
    const key = JSON.stringify(msg.encoding);
    if (p.table.encoding === key) return; // the same again after a reconnection: nothing changes
    const shard = {
      train: encodeTable(p.table.train, welcome.table, msg.encoding, welcome.classes),
      val: encodeTable(p.table.val, welcome.table, msg.encoding, welcome.classes),
    };
    p.trainer?.dispose();
    p.trainer = undefined;
    p.trainable = undefined;
    p.shard = shard;
    p.table.encoding = key;
    this.options.log.info('table-encoded', { run: msg.runId, train: shard.train.n, val: shard.val.n, width: shard.train.width });
    if (!welcome.normalization && !welcome.backboneTrainsFromStart) {
      p.trainer = await this.turn(() => this.headTrainer(welcome, p.files, shard));
      p.trainable = '';
    }
  }

  /** `work` in this client's turn when it shares a thread with others ({@link ClientOptions.turns}), else at once. */
  private turn<T>(work: () => Promise<T>): Promise<T> {
    return this.options.turns ? this.options.turns.run(work) : work();
  }

  /** Progress of one feature extraction: images done of the total, at most every `progressEveryMs`. */
  private extractionProgress(): (done: number, total: number) => void {
    const progress = throttled(this.options.log, 'extracting-features', this.options.progressEveryMs ?? DEFAULT_PROGRESS_EVERY_MS);
    return (done, total) => progress({ images: `${done}/${total}`, percent: Math.round((100 * done) / total) });
  }

  /**
   * Features at the run's cut, read from the on-disk cache or computed with the backbone, which is loaded
   * only if some are not cached (once for every split asked); `dispose` frees it.
   */
  private cutFeatures(
    welcome: Welcome,
    files: ModelFile[],
  ): { features: (data: ImageDataset) => Promise<{ features: Float32Array; hit: boolean }>; dispose: () => void } {
    let fx: FeatureExtractor | undefined;
    const extractor = async (): Promise<FeatureExtractor> => {
      if (fx) return fx;
      fx = await loadBackbone(files, { feature: welcome.backbone.featureLayer, where: `backbone ${welcome.backbone.sha256.slice(0, 12)}` });
      if (fx.featureDim !== welcome.head.featureDim) {
        throw new FtlError(
          ErrorCode.WeightsMismatch,
          `backbone gives ${fx.featureDim} features but the run's head expects ${welcome.head.featureDim}`,
        );
      }
      return fx;
    };
    const features = (data: ImageDataset) =>
      cachedFeatures({
        cacheDir: this.options.cacheDir,
        ...(this.options.featureCacheMaxBytes !== undefined ? { maxBytes: this.options.featureCacheMaxBytes } : {}),
        backboneSha256: welcome.backbone.sha256,
        featureLayer: welcome.backbone.featureLayer,
        data,
        featureDim: welcome.head.featureDim,
        compute: async () => extractFeatures(await extractor(), data, { onProgress: this.extractionProgress() }),
        log: this.options.log,
      });
    return { features, dispose: () => fx?.dispose() };
  }

  /** The head-only trainer on features at the run's cut. The backbone is loaded only if some features are not cached. */
  private async headTrainer(welcome: Welcome, files: ModelFile[], shard: ClientShard): Promise<HeadTrainer> {
    const { log } = this.options;
    const t0 = performance.now();
    const { features, dispose } = this.cutFeatures(welcome, files);
    try {
      const { trainer, hit } = await trainerOnFeatures(welcome, shard, features);
      log.info('features-ready', {
        run: welcome.runId,
        train: trainer.numTrain,
        val: trainer.numVal,
        cache: hit ? 'hit' : 'miss',
        ms: Math.round(performance.now() - t0),
      });
      return trainer;
    } finally {
      dispose();
    }
  }

  /**
   * The class-sums phase (FedNCM, and the discriminant head): per class, the sum of this site's training
   * feature vectors at the run's cut (the pretrained backbone's, of the normalised images when the run
   * normalises) and how many there are; when asked, the within-class scatter of the same vectors too. Only
   * these sums, counts and scatter leave the site, never a feature or a record.
   */
  private async onClassSums(msg: ClassSumsInstruction): Promise<void> {
    const p = this.requirePrepared(msg.runId);
    if (this.options.classSums === false) {
      const message = 'this site does not send class statistics (--no-class-sums); start the head without them';
      this.options.log.info('class-sums-declined', { run: msg.runId });
      this.sendFailure('class-sums', msg, message);
      return;
    }
    if (this.options.dpBudget !== undefined) {
      const message = `privacy budget: class sums are exact sums of this site's training features, which record-level DP does not cover, and this site keeps an ε budget of ${this.options.dpBudget}`;
      this.refuseForPrivacy('class-sums', msg, { message, privacy: undefined });
      return;
    }
    try {
      const { welcome } = p;
      requireEncoded(p);
      if (welcome.normalization && !msg.normalization) {
        throw new FtlError(ErrorCode.InvalidMessage, `run ${welcome.runId} normalises its inputs but the class-sums request sent no normalization`);
      }
      const train = (msg.normalization ? normalizeShard(p.shard, msg.normalization) : p.shard).train;
      const { features, dispose } = this.cutFeatures(welcome, p.files);
      let values: Float32Array;
      try {
        values = await this.turn(async () => (await features(train)).features);
      } finally {
        dispose();
      }
      const { classes, featureDim } = welcome.head;
      const sums = new Float64Array(classes * featureDim);
      const counts = new Array<number>(classes).fill(0);
      for (let i = 0; i < train.n; i++) {
        const c = train.labels[i]!;
        counts[c]!++;
        for (let j = 0; j < featureDim; j++) sums[c * featureDim + j]! += values[i * featureDim + j]!;
      }
      let scatter: Float64Array | undefined;
      if (msg.scatter) {
        // About this site's own class means; the coordinator adds the between-site terms from the sums.
        const means = sums.map((v, k) => (counts[Math.floor(k / featureDim)]! > 0 ? v / counts[Math.floor(k / featureDim)]! : 0));
        scatter = await this.turn(() => withinClassScatter(values, train.labels, means, featureDim));
      }
      const ack = await this.emitWithAck('class-sums-result', {
        ...answerTo(msg),
        counts,
        sums: encodeWeights({
          specs: [{ name: CLASS_SUMS_TENSOR, shape: [classes, featureDim], dtype: 'float32' }],
          values: Float32Array.from(sums),
        }),
        ...(scatter
          ? {
              scatter: encodeWeights({
                specs: [{ name: FEATURE_SCATTER_TENSOR, shape: [featureDim, featureDim], dtype: 'float32' }],
                values: Float32Array.from(scatter),
              }),
            }
          : {}),
      });
      if (ack.accepted) this.options.log.info('class-sums-accepted', { run: msg.runId, counts: counts.join(',') });
      else this.options.log.warn('class-sums-rejected', { run: msg.runId, reason: oneLine(ack.reason, 64), detail: oneLine(ack.message) });
    } catch (err) {
      this.reportFailure('class-sums', msg, err);
    }
  }

  private async onFit(msg: FitInstruction): Promise<void> {
    this.inForce = { runId: msg.runId, privacy: msg.config.privacy };
    const log = this.options.log.child({ run: msg.runId, round: msg.round });
    const p = this.requirePrepared(msg.runId);
    try {
      const global = decodeWeights(msg.weights);
      const progress = throttled(log, 'training', this.options.progressEveryMs ?? DEFAULT_PROGRESS_EVERY_MS);
      const outcome = await this.turn(async () => {
        const trainer = await this.trainerFor(p, global.specs, msg.normalization);
        const gate = this.privacyGate(p.welcome, msg.config, trainer.numTrain, msg.round, 1);
        if ('refusal' in gate) return gate;
        const trained = await trainer.fit(global, { ...msg.config, ...gate }, (epoch, m) =>
          progress({ epoch: `${epoch}/${msg.config.epochs}`, loss: m.loss.toFixed(4) }),
        );
        // Saved before the update leaves: its ε is on disk even if this process dies right after.
        if (trained.privacy) await this.ledger!.record(trained.privacy);
        return { trainer, trained };
      });
      if ('refusal' in outcome) {
        this.refuseForPrivacy('fit', msg, outcome.refusal);
        return;
      }
      const { trainer, trained } = outcome;
      const trainedWeights = this.options.transformUpdate ? this.options.transformUpdate(trained.weights, global) : trained.weights;
      if (msg.secureAggregation) {
        // No update leaves: the change is masked in phase 2, after the keys this answer advertises.
        await this.secureAdvertise(msg, msg.secureAggregation, trainedWeights, global, trainer.numTrain, trained.metrics);
        return;
      }
      // Client-level DP: only the change clipped to the round's S (noised here with local noise) leaves the site.
      const { dpSeed } = this.options;
      const clipped = msg.config.clientPrivacy
        ? clipForClientDp(trainedWeights, global, msg.config.clientPrivacy, dpSeed !== undefined ? deriveSeed(dpSeed, msg.round) : undefined)
        : undefined;
      const weights = clipped ? clipped.weights : trainedWeights;
      const { metrics } = trained;
      const privacy = this.privacySpent(msg.config);
      const ack = await this.emitWithAck('fit-result', {
        ...answerTo(msg),
        weights: encodeWeights(weights),
        numExamples: trainer.numTrain,
        metrics,
        ...(privacy ? { privacy } : {}),
        ...(clipped?.clientPrivacy ? { clientPrivacy: clipped.clientPrivacy } : {}),
      });
      if (ack.accepted) {
        log.info('update-accepted', {
          loss: metrics.loss.toFixed(4),
          seconds: metrics.seconds.toFixed(2),
          ...(privacy ? { epsilon: privacy.epsilon.toFixed(3), delta: privacy.delta } : {}),
        });
      } else {
        log.warn('update-rejected', { reason: oneLine(ack.reason, 64), detail: oneLine(ack.message) });
        // This site sends no second answer: say so, so the round does not wait for it until its deadline.
        this.sendFailure('fit', msg, `the coordinator refused this site's update (${ack.reason}): ${ack.message}`);
      }
    } catch (err) {
      this.reportFailure('fit', msg, err);
    }
  }

  /** Phase 0 of a secure-aggregation round, after training: the site's keys and metrics; its input waits for phase 2. */
  private async secureAdvertise(
    msg: FitInstruction,
    sa: SecAggInstruction,
    trained: Weights,
    global: Weights,
    numExamples: number,
    metrics: FitMetrics,
  ) {
    const { dpSeed } = this.options;
    const input = secureInput(trained, global, sa, msg.config.clientPrivacy, dpSeed !== undefined ? deriveSeed(dpSeed, msg.round) : undefined);
    const round = new SecureRound(answerTo(msg), sa, input);
    this.secure = round;
    const privacy = this.privacySpent(msg.config);
    const ack = await this.emitWithAck('secagg-advertise', {
      ...answerTo(msg),
      ...round.advertise(),
      numExamples,
      metrics,
      ...(privacy ? { privacy } : {}),
    });
    this.secureAnswered('secagg-advertise', msg, ack);
  }

  /** Phases 1–3 of the secure-aggregation round this site advertised keys for: each answered from its state machine. */
  private async onSecure(
    m:
      | { event: 'secagg-directory'; msg: SecAggDirectory }
      | { event: 'secagg-delivery'; msg: SecAggDelivery }
      | { event: 'secagg-unmask'; msg: SecAggUnmask },
  ): Promise<void> {
    const round = this.secure;
    try {
      if (!round?.matches(m.msg)) throw staleSecureMessage(m.event, m.msg, round);
      const envelope = answerTo(m.msg);
      if (m.event === 'secagg-directory') {
        this.secureAnswered('secagg-shares', m.msg, await this.emitWithAck('secagg-shares', { ...envelope, ...round.share(m.msg) }));
      } else if (m.event === 'secagg-delivery') {
        this.secureAnswered('secagg-masked-input', m.msg, await this.emitWithAck('secagg-masked-input', { ...envelope, ...round.mask(m.msg) }));
      } else {
        this.secure = undefined;
        this.secureAnswered('secagg-unmask-shares', m.msg, await this.emitWithAck('secagg-unmask-shares', { ...envelope, ...round.unmask(m.msg) }));
      }
    } catch (err) {
      if (round?.matches(m.msg)) this.secure = undefined;
      this.reportFailure('fit', m.msg, err);
    }
  }

  /** Logs the coordinator's answer to a secure-aggregation message; a refused one ends this site's part in the round. */
  private secureAnswered(event: string, msg: { runId: string; round: number; modelVersion: number }, ack: Ack): void {
    const log = this.options.log.child({ run: msg.runId, round: msg.round });
    if (ack.accepted) {
      log.info('secure-aggregation-accepted', { event });
      return;
    }
    log.warn('secure-aggregation-rejected', { event, reason: oneLine(ack.reason, 64), detail: oneLine(ack.message) });
    this.secure = undefined;
    this.sendFailure('fit', msg, `the coordinator refused this site's ${event} (${ack.reason}): ${ack.message}`);
  }

  private async onEvaluate(msg: EvaluateInstruction): Promise<void> {
    const p = this.requirePrepared(msg.runId);
    try {
      const weights = decodeWeights(msg.weights);
      const result = await this.turn(async () => (await this.trainerFor(p, weights.specs, msg.normalization)).evaluate(weights));
      const ack = await this.emitWithAck('evaluate-result', { ...answerTo(msg), ...result });
      if (!ack.accepted) this.sendFailure('evaluate', msg, `the coordinator refused this site's evaluation (${ack.reason}): ${ack.message}`);
    } catch (err) {
      this.reportFailure('evaluate', msg, err);
    }
  }

  private async onPersonalize(msg: PersonalizeInstruction): Promise<void> {
    this.inForce = { runId: msg.runId, privacy: msg.config.privacy };
    const p = this.requirePrepared(msg.runId);
    try {
      const weights = decodeWeights(msg.weights);
      const r = await this.turn(async () => {
        const trainer = await this.trainerFor(p, weights.specs, msg.normalization);
        // The fine-tuned copy never leaves the site, but its accuracy does: it trains under DP and is accounted like a round.
        const gate = this.privacyGate(p.welcome, msg.config, trainer.numTrain, msg.round, 2);
        if ('refusal' in gate) return gate;
        const result = await trainer.personalize(weights, { ...msg.config, ...gate });
        if (result.privacy) await this.ledger!.record(result.privacy);
        return result;
      });
      if ('refusal' in r) {
        this.refuseForPrivacy('personalize', msg, r.refusal);
        return;
      }
      const privacy = this.privacySpent(msg.config);
      this.options.log.info('personalized', {
        run: msg.runId,
        global: r.global.accuracy.toFixed(4),
        personal: r.personal.accuracy.toFixed(4),
        ...(privacy ? { epsilon: privacy.epsilon.toFixed(3) } : {}),
      });
      await this.emitWithAck('personalize-result', {
        ...answerTo(msg),
        numExamples: r.numExamples,
        globalLoss: r.global.loss,
        globalAccuracy: r.global.accuracy,
        personalLoss: r.personal.loss,
        personalAccuracy: r.personal.accuracy,
        ...(privacy ? { privacy } : {}),
      });
    } catch (err) {
      this.reportFailure('personalize', msg, err);
    }
  }

  /**
   * The trainer for the tensors a round sends: the head-only trainer made on welcome, or (fine-tuning)
   * one that also trains the backbone layers among the tensors, on features cached at the highest frozen
   * layer below them. It is rebuilt only when that set changes (gradual unfreezing), replacing the old one.
   */
  private async trainerFor(p: Prepared, specs: readonly WeightSpec[], normalization?: Normalization): Promise<HeadTrainer> {
    const { welcome } = p;
    requireEncoded(p);
    if (welcome.normalization && !normalization) {
      throw new FtlError(ErrorCode.InvalidMessage, `run ${welcome.runId} normalises its inputs but the round sent no normalization`);
    }
    const layers = backboneLayersOf(specs);
    const unfrozen = layers.join(',');
    // The normalisation is part of what the trainer was built for (other images, other features), not of the layer list.
    const key = unfrozen + (normalization ? `|${normalization.kind}:${normalization.shift.join(',')}:${normalization.scale.join(',')}` : '');
    if (key === p.trainable && p.trainer) return p.trainer;
    // Normalised images have other values, so their features are cached apart from the raw ones.
    const shard = normalization ? normalizeShard(p.shard, normalization) : p.shard;
    if (layers.length === 0) {
      const trainer = await this.headTrainer(welcome, p.files, shard);
      p.trainer?.dispose();
      p.trainer = trainer;
      p.trainable = key;
      return trainer;
    }
    const { log } = this.options;
    const cut = welcome.backbone.featureLayer;
    const t0 = performance.now();
    const fx = await loadBackbone(p.files, { feature: cut, where: `backbone ${welcome.backbone.sha256.slice(0, 12)}` });
    let trainer: HeadTrainer;
    try {
      if (fx.kind !== 'layers') {
        throw new FtlError(
          ErrorCode.WeightsMismatch,
          `the round trains backbone layers ${unfrozen} but this run's backbone is a graph model, which cannot be trained`,
        );
      }
      const network = createTrainableNetwork(fx, layers.length, welcome.head, 0);
      const { plan } = network;
      if (plan.unfrozen.join(',') !== unfrozen) {
        network.model.dispose();
        throw new FtlError(
          ErrorCode.WeightsMismatch,
          `the round trains backbone layers ${unfrozen}, but the top ${layers.length} layers with weights below the cut "${cut}" are ${plan.unfrozen.join(', ')}`,
        );
      }
      // The images themselves need no cache; every other boundary's output is cached like the cut's.
      const features = (data: ImageDataset) =>
        plan.boundaryIsInput
          ? boundaryFeatures(fx, plan, data).then((features) => ({ features, hit: false }))
          : cachedFeatures({
              cacheDir: this.options.cacheDir,
              ...(this.options.featureCacheMaxBytes !== undefined ? { maxBytes: this.options.featureCacheMaxBytes } : {}),
              backboneSha256: welcome.backbone.sha256,
              featureLayer: plan.boundary,
              data,
              featureDim: plan.inputDim,
              compute: async () => boundaryFeatures(fx, plan, data, this.extractionProgress()),
              log,
            });
      ({ trainer } = await trainerOnFeatures(welcome, shard, features, network));
      log.info('trainable-set', {
        run: welcome.runId,
        backbone: unfrozen || '(none)',
        boundary: plan.boundary,
        ms: Math.round(performance.now() - t0),
      });
    } finally {
      fx.dispose();
    }
    p.trainer?.dispose();
    p.trainer = trainer;
    p.trainable = key;
    return trainer;
  }

  /**
   * Whether this site trains on `n` examples under `config` (a round's fit or the personalisation), and
   * how: the DP-SGD settings when the run asks for record-level DP, or the refusal to send when its ledger
   * says the training would pass the site's budget (or would run without DP on a site that keeps one).
   * DP noise comes from the system's secret randomness unless `dpSeed` is set (simulations), never from
   * the round's seed; `stream` keeps the fit's and the personalisation's apart.
   *
   * @throws FtlError(INVALID_CONFIG) for DP in a run that augments: each record would be several examples,
   * so clipping would not bound it and the ε reported would be too small (the run config refuses this too).
   */
  private privacyGate(
    welcome: Welcome,
    config: FitConfig,
    n: number,
    round: number,
    stream: number,
  ): { dp?: DpSgdConfig } | { refusal: PrivacyRefusal } {
    const mechanism = config.privacy;
    if (mechanism && (welcome.augment?.copies ?? 0) > 0) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `run ${welcome.runId} asks for record-level DP but augments each training image ${welcome.augment!.copies} times; DP-SGD clips examples, not records, so this site does not train it`,
      );
    }
    const schedule = mechanism ? dpSchedule(n, config.batchSize) : undefined;
    const noiseMultiplier = mechanism ? noiseMultiplierOf(mechanism, n, config.batchSize) : undefined;
    // What the audit log records as in force: the σ this site trains with, its own when the run gave an ε target.
    if (mechanism && this.inForce?.privacy === mechanism) this.inForce = { ...this.inForce, privacy: { ...mechanism, noiseMultiplier } };
    const next =
      schedule && noiseMultiplier !== undefined
        ? { noiseMultiplier, sampleRate: schedule.sampleRate, steps: config.epochs * schedule.stepsPerEpoch }
        : undefined;
    const decision = this.ledger!.decide({ budget: this.options.dpBudget, delta: mechanism?.delta, next });
    if (!decision.train) return { refusal: { message: decision.message, privacy: decision.privacy } };
    if (!mechanism) return {};
    const { dpSeed } = this.options;
    return {
      dp: {
        noiseMultiplier: noiseMultiplier!,
        clipNorm: mechanism.clipNorm,
        sampling: mechanism.sampling,
        ...(dpSeed !== undefined ? { seed: deriveSeed(dpSeed, round, stream) } : {}),
      },
    };
  }

  /** What this site has spent so far at the run's δ, for an answer to a DP instruction (none without DP). */
  private privacySpent(config: FitConfig): PrivacyReport | undefined {
    return config.privacy ? this.ledger!.spent(config.privacy.delta, this.options.dpBudget) : undefined;
  }

  /** Tells the coordinator this site will not do `stage` for its privacy budget, and logs why. */
  private refuseForPrivacy(stage: FailureStage, msg: Answered, refusal: PrivacyRefusal): void {
    this.options.log.warn('privacy-budget-refused', { run: msg.runId, round: msg.round, stage, detail: refusal.message });
    this.sendFailure(stage, msg, refusal.message, { reason: 'privacy-budget', ...(refusal.privacy ? { privacy: refusal.privacy } : {}) });
  }

  private requirePrepared(runId: string): Prepared {
    if (!this.prepared || this.prepared.runId !== runId) {
      throw new FtlError(ErrorCode.InvalidMessage, `instruction for run "${runId}" arrived before its welcome`);
    }
    return this.prepared;
  }

  private reportFailure(stage: FailureStage, msg: Answered, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.options.log.error(`${stage}-failed`, { run: msg.runId, round: msg.round, detail: message });
    this.sendFailure(stage, msg, message);
  }

  /** Tells the coordinator this site will not answer the round's `stage`, with why (`extra`: a reason the coordinator acts on). */
  private sendFailure(stage: FailureStage, msg: Answered, message: string, extra: { reason?: 'privacy-budget'; privacy?: PrivacyReport } = {}): void {
    if (!this.socket) return;
    const failure = { ...answerTo(msg), stage, message: message.slice(0, 2000), ...extra };
    this.recordSent('failure', failure);
    this.socket.emit('failure', failure);
  }

  /**
   * Writes the audit line of a message about to be sent: every message this site sends passes here
   * first, and is not sent when its line cannot be written.
   */
  private recordSent(kind: AuditKind, message: { runId: string; round?: number; privacy?: PrivacyReport }): void {
    if (!this.audit) return;
    const privacy = this.inForce?.runId === message.runId ? this.inForce.privacy : undefined;
    this.audit.append({
      kind,
      run: message.runId,
      round: message.round ?? null,
      payload: message,
      ...(privacy ? { privacy } : {}),
      ...(message.privacy ? { epsilon: message.privacy.epsilon } : {}),
    });
  }

  private async emitWithAck<E extends AckedEvent>(event: E, message: Parameters<ClientToServerEvents[E]>[0]): Promise<Ack> {
    const socket = this.socket!;
    this.recordSent(event, message);
    const acked = socket.timeout(this.options.ackTimeoutMs ?? 30_000).emitWithAck(event, message);
    // A lost connection loses the acknowledgement too: stop waiting at once, so the next welcome
    // (after reconnecting) is handled without sitting out the ack timeout. The abandoned ack still times
    // out later; that rejection is expected and must not surface as an unhandled one.
    acked.catch(() => {});
    let onDisconnect: (() => void) | undefined;
    const lost = new Promise<never>((_, reject) => {
      onDisconnect = () => reject(new Error(`disconnected before the coordinator acknowledged ${event}`));
      socket.once('disconnect', onDisconnect);
    });
    try {
      return parseAck(await Promise.race([acked, lost]));
    } finally {
      socket.off('disconnect', onDisconnect);
    }
  }
}

/**
 * How long a site that cannot prepare waits for the coordinator to close the connection after its
 * `failure` (the coordinator closes it once it has recorded the error). Leaving at once could lose the
 * message: socket.io drops an event that arrives with the disconnect that follows it.
 */
const PREPARE_FAILURE_GRACE_MS = 2000;

/** Resolves when `socket` disconnects, or after `ms` (an older coordinator does not close it). */
function closedByPeer(socket: ClientChannel, ms: number): Promise<void> {
  if (!socket.connected) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('disconnect', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    socket.once('disconnect', done);
  });
}

/** Errors after which the client cannot take part: nothing a later round could fix. */
function isFatal(err: FtlError): boolean {
  return (
    [ErrorCode.BackboneDigestMismatch, ErrorCode.BackboneLoad, ErrorCode.ProtocolMismatch, ErrorCode.Dataset, ErrorCode.WeightsMismatch] as string[]
  ).includes(err.code);
}
