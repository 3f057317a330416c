import { io, type Socket } from 'socket.io-client';
import {
  createMsgpackParser,
  decodeWeights,
  encodeWeights,
  parseEvaluateInstruction,
  parseFitInstruction,
  parseGoodbye,
  parseRunEnd,
  parseWelcome,
  PROTOCOL_VERSION,
  type ChannelStats,
  type FitConfig,
  type FitMetrics,
  type Goodbye,
  type Normalization,
  type PrivacyReport,
  type RunEnd,
  type Weights,
  type Welcome,
} from '@ftl/shared';

/**
 * A site that speaks the wire protocol (docs/protocol.md) by hand and lies where it is told to. It has no
 * data and trains nothing: it answers every message at once, like an honest site that is very fast, so
 * the coordinator selects it every round. A research tool for testing the coordinator's trust policy;
 * the attacks below are the options.
 */

/** What the site says at `ready`, its channel statistics included. */
export interface Declaration {
  numTrain: number;
  numVal: number;
  /** Label names, as an honest site would send them; none by default. */
  labels?: string[];
  /** Sent when the welcome asks for federated normalisation. */
  stats?: ChannelStats;
}

/** What the site knows when it answers a `fit`. */
export interface FitContext {
  round: number;
  /** The global weights it was sent. */
  global: Weights;
  config: FitConfig;
  normalization?: Normalization;
}

/** A crafted `fit-result` (with the privacy it claims to have spent, if any), or a `failure` (the round goes on without this site). */
export type FitAnswer = { weights: Weights; numExamples: number; metrics?: FitMetrics; privacy?: PrivacyReport } | 'fail';

/** A crafted `evaluate-result`, or a `failure`. */
export type EvaluateAnswer = { numExamples: number; loss: number; accuracy: number } | 'fail';

/** Options of {@link HostileClient}. */
export interface HostileOptions {
  serverUrl: string;
  name: string;
  token?: string;
  declare: Declaration;
  /** How to answer `fit` (default: {@link echoGlobal} with the declared numTrain). */
  fit?: (c: FitContext) => FitAnswer;
  /** How to answer `evaluate` in a round (default: {@link plausibleEvaluation} with the declared numVal). */
  evaluate?: (round: number, global: Weights) => EvaluateAnswer;
  /**
   * After a refused `fit-result` or `evaluate-result`, report a failure for that stage so the round need not
   * wait for its deadline (a refusal leaves the site's answer open). Default false: stay silent, as the real
   * client does.
   */
  failAfterRefusal?: boolean;
  /** Acknowledgement wait (default 30 s); an ack that does not come is recorded as `no-ack`. */
  ackTimeoutMs?: number;
}

/** One message the site sent that expects an acknowledgement, and the answer it got. */
export interface AckRecord {
  event: string;
  round?: number;
  ack: unknown;
}

const DEFAULT_METRICS: FitMetrics = { loss: 0.5, accuracy: 0.85, seconds: 1 };

/** Every value of `w` × `factor` (as float32: ×1e30 of a head weight is still finite). */
export function scaled(w: Weights, factor: number): Weights {
  return { specs: w.specs, values: w.values.map((v) => v * factor) };
}

/** Sends the global weights back unchanged, claiming `numExamples`: a site that learns nothing. */
export function echoGlobal(numExamples: number): (c: FitContext) => FitAnswer {
  return ({ global }) => ({ weights: global, numExamples });
}

/** Sends `factor` × the global weights, claiming `numExamples` (−10 with a huge claim; 1e30 with a tiny one). */
export function scaledGlobal(factor: number, numExamples: number): (c: FitContext) => FitAnswer {
  return ({ global }) => ({ weights: scaled(global, factor), numExamples });
}

/** The same honest-looking evaluation every round. */
export function plausibleEvaluation(numExamples: number, loss = 0.4, accuracy = 0.88): (round: number) => EvaluateAnswer {
  return () => ({ numExamples, loss, accuracy });
}

/**
 * The early-stopping attack: reports a perfect round 1 (accuracy 1, loss 0, both in range) and a poor head
 * from then on, so that a sample-weighted validation loss calls round 1 the best and stops after it.
 */
export function perfectFirstRound(numExamples: number, laterLoss = 10, laterAccuracy = 0): (round: number) => EvaluateAnswer {
  return (round) => (round === 1 ? { numExamples, loss: 0, accuracy: 1 } : { numExamples, loss: laterLoss, accuracy: laterAccuracy });
}

/** Statistics of `count` values per channel, every channel with the same mean and standard deviation in [0, 1]. */
export function plausibleStats(count: number, channels = 1, mean = 0.13, std = 0.31): ChannelStats {
  const fill = (v: number) => new Array<number>(channels).fill(v);
  return { count, sum: fill(mean * count), sumSquares: fill((std * std + mean * mean) * count), min: fill(0), max: fill(1) };
}

/** Finite but absurd statistics: sums of `sum` (1e300) that would move the federation's shift to ~1e293. */
export function hugeSumStats(count: number, channels = 1, sum = 1e300): ChannelStats {
  const fill = (v: number) => new Array<number>(channels).fill(v);
  return { count, sum: fill(sum), sumSquares: fill(sum), min: fill(0), max: fill(1) };
}

/**
 * A hostile site over a real socket.io connection (msgpackr frames, the real handshake). Everything it
 * received and every acknowledgement it got is recorded for tests to assert on.
 *
 * @example
 * const h = new HostileClient({ serverUrl: url, name: 'hostile', declare: { numTrain: 1_000_000, numVal: 100 },
 *   fit: scaledGlobal(-10, 1_000_000) });
 * await h.connect();
 * await h.ended; // run-end, or the connection closed
 * h.acks.filter((a) => a.event === 'fit-result');
 */
export class HostileClient {
  readonly acks: AckRecord[] = [];
  readonly welcomes: Welcome[] = [];
  readonly goodbyes: Goodbye[] = [];
  /** Normalisations the coordinator sent with `fit`. */
  readonly normalizations: Normalization[] = [];
  runEnd?: RunEnd;
  /** Why the connection closed (socket.io's reason), once it has. */
  disconnectReason?: string;
  /** Settles when the run ends or the connection closes, whichever comes first. */
  readonly ended: Promise<void>;
  private readonly socket: Socket;
  private end!: () => void;
  private readyAck?: Promise<unknown>;

  constructor(private readonly options: HostileOptions) {
    this.ended = new Promise((resolve) => (this.end = resolve));
    this.socket = io(options.serverUrl, {
      parser: createMsgpackParser(),
      auth: { protocol: PROTOCOL_VERSION, name: options.name, ...(options.token ? { token: options.token } : {}) },
      transports: ['websocket'],
      reconnection: false,
      autoConnect: false,
      forceNew: true,
    });
    const s = this.socket;
    s.on('welcome', (raw: unknown) => {
      const welcome = parseWelcome(raw);
      this.welcomes.push(welcome);
      const { numTrain, numVal, labels, stats } = options.declare;
      this.readyAck = this.emitWithAck('ready', {
        protocol: PROTOCOL_VERSION,
        runId: welcome.runId,
        numTrain,
        numVal,
        ...(labels ? { labels } : {}),
        ...(welcome.normalization && stats ? { stats } : {}),
      });
    });
    s.on('fit', (raw: unknown) => {
      const msg = parseFitInstruction(raw);
      const envelope = { protocol: PROTOCOL_VERSION, runId: msg.runId, round: msg.round, modelVersion: msg.modelVersion };
      if (msg.normalization) this.normalizations.push(msg.normalization);
      const global = copyOf(decodeWeights(msg.weights));
      const answer = (options.fit ?? echoGlobal(options.declare.numTrain))({
        round: msg.round,
        global,
        config: msg.config,
        ...(msg.normalization ? { normalization: msg.normalization } : {}),
      });
      if (answer === 'fail') {
        s.emit('failure', { ...envelope, stage: 'fit', message: 'this site does not train' });
        return;
      }
      void this.emitWithAck(
        'fit-result',
        {
          ...envelope,
          weights: encodeWeights(answer.weights),
          numExamples: answer.numExamples,
          metrics: answer.metrics ?? DEFAULT_METRICS,
          ...(answer.privacy ? { privacy: answer.privacy } : {}),
        },
        msg.round,
      ).then((ack) => this.afterAck(ack, { ...envelope, stage: 'fit' }));
    });
    s.on('evaluate', (raw: unknown) => {
      const msg = parseEvaluateInstruction(raw);
      const envelope = { protocol: PROTOCOL_VERSION, runId: msg.runId, round: msg.round, modelVersion: msg.modelVersion };
      const answer = (options.evaluate ?? plausibleEvaluation(options.declare.numVal))(msg.round, copyOf(decodeWeights(msg.weights)));
      if (answer === 'fail') s.emit('failure', { ...envelope, stage: 'evaluate', message: 'this site does not evaluate' });
      else
        void this.emitWithAck('evaluate-result', { ...envelope, ...answer }, msg.round).then((ack) =>
          this.afterAck(ack, { ...envelope, stage: 'evaluate' }),
        );
    });
    s.on('personalize', (raw: unknown) => {
      const msg = raw as { runId: string; round: number; modelVersion: number };
      s.emit('failure', {
        protocol: PROTOCOL_VERSION,
        runId: msg.runId,
        round: msg.round,
        modelVersion: msg.modelVersion,
        stage: 'personalize',
        message: 'no',
      });
    });
    s.on('goodbye', (raw: unknown) => this.goodbyes.push(parseGoodbye(raw)));
    s.on('run-end', (raw: unknown) => {
      this.runEnd = parseRunEnd(raw);
      s.disconnect();
      this.end();
    });
    s.on('disconnect', (reason) => {
      this.disconnectReason = reason;
      this.end();
    });
  }

  /** Connects; rejects with the coordinator's refusal (`connect_error`), or when the connection closes first. */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('connect_error', (err) => reject(err));
      this.socket.once('disconnect', (reason) => reject(new Error(`the connection closed before it was established (${reason})`)));
      this.socket.connect();
    });
  }

  /** Whether the socket is connected right now (this side's view). */
  get connected(): boolean {
    return this.socket.connected;
  }

  /** The acknowledgement of the last `ready` (after the first welcome has come). */
  async readyAcknowledged(): Promise<unknown> {
    while (!this.readyAck) await new Promise((r) => setTimeout(r, 10));
    return this.readyAck;
  }

  /**
   * Emits any event with an acknowledgement and records the answer: `no-ack` when the connection is closed
   * or closes before the answer, or none comes within the ack timeout.
   */
  async emitWithAck(event: string, payload: unknown, round?: number): Promise<unknown> {
    let ack: unknown = 'no-ack';
    if (this.socket.connected) {
      try {
        ack = await this.socket.timeout(this.options.ackTimeoutMs ?? 30_000).emitWithAck(event, payload);
      } catch {
        // closed before the answer, or none came
      }
    }
    this.acks.push({ event, ...(round !== undefined ? { round } : {}), ack });
    return ack;
  }

  /**
   * Emits any event name with `args`, including the names socket.io keeps for itself (`disconnect`, …),
   * which socket.io-client's own `emit` refuses to send: the packet is written to the connection directly.
   */
  emitRaw(event: string, ...args: unknown[]): void {
    (this.socket as unknown as { packet(p: { type: number; data: unknown[] }): void }).packet({ type: EVENT_PACKET, data: [event, ...args] });
  }

  private afterAck(ack: unknown, where: { protocol: number; runId: string; round: number; modelVersion: number; stage: 'fit' | 'evaluate' }): void {
    const a = ack as { accepted?: boolean; reason?: string };
    if (this.options.failAfterRefusal && a.accepted === false) {
      this.socket.emit('failure', { ...where, message: `refused: ${a.reason ?? 'no reason'}` });
    }
  }

  /** Closes the connection from this side. */
  close(): void {
    this.socket.disconnect();
  }
}

// socket.io-parser's PacketType.EVENT.
const EVENT_PACKET = 2;

/** A copy that owns its buffer: the decoded view points into a frame socket.io may reuse. */
function copyOf(w: Weights): Weights {
  return { specs: w.specs, values: w.values.slice() };
}
