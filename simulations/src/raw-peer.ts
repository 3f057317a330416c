import { io, type Socket } from 'socket.io-client';
import {
  createMsgpackParser,
  decodeWeights,
  encodeWeights,
  parseAck,
  PROTOCOL_VERSION,
  type Ack,
  type EncodedWeights,
  type EvaluateInstruction,
  type FitInstruction,
  type Welcome,
} from '@ftl/shared';

/** What a hand-driven peer received, in order, per event. */
type Inbox = { fit: FitInstruction[]; evaluate: EvaluateInstruction[] };

/**
 * A hand-driven site on a real socket.io connection, for fault tests and the chaos run: it joins like
 * a site (handshake, `welcome`, `ready` with declared counts) and then does exactly what its driver says
 * with each instruction: answer, answer late, never answer, answer with the wrong thing, or send frames
 * that are not protocol at all.
 */
export interface RawPeer {
  readonly socket: Socket;
  readonly welcome: Welcome;
  /** The next `fit` (or `evaluate`) instruction, waiting for it if none is queued. */
  next<E extends keyof Inbox>(event: E): Promise<Inbox[E][number]>;
  /**
   * Sends a fit result for `fit` and returns the ack: the global weights unchanged unless `values` (same
   * tensors) or `weights` (anything, e.g. the wrong tensors) replace them.
   */
  sendUpdate(fit: FitInstruction, over?: UpdateOverrides): Promise<Ack>;
  /** Answers an evaluation with plausible metrics on the declared validation count. */
  sendEvaluation(ev: EvaluateInstruction): Promise<Ack>;
  /** The bytes of the socket.io frame a fit result for `fit` would travel in. */
  updateFrame(fit: FitInstruction): Uint8Array;
  /** Sends `bytes` as one raw binary engine.io message, bypassing the socket.io encoder. */
  sendRaw(bytes: Uint8Array | string): void;
  /** Resolves when the connection closes (by either side), with socket.io's reason. */
  readonly closed: Promise<string>;
  disconnect(): void;
}

/** What a raw peer's update changes from an honest echo of the global weights. */
export interface UpdateOverrides {
  values?: Float32Array;
  weights?: EncodedWeights;
  round?: number;
  modelVersion?: number;
  numExamples?: number;
}

/** Options of {@link connectRawPeer}. */
export interface RawPeerOptions {
  token?: string;
  /** Declared training and validation sample counts (`ready`). */
  numTrain?: number;
  numVal?: number;
  /** How long an ack may take before the emit rejects (default 30 s). */
  ackTimeoutMs?: number;
}

const packetEncoder = new (createMsgpackParser().Encoder as new () => { encode(p: object): Uint8Array[] })();

/**
 * Connects a raw peer named `name` and resolves once the coordinator has acknowledged its `ready` for
 * the active run. Rejects when the connection is refused (with the coordinator's reason).
 */
export function connectRawPeer(url: string, name: string, o: RawPeerOptions = {}): Promise<RawPeer> {
  const socket = io(url, {
    parser: createMsgpackParser(),
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: { protocol: PROTOCOL_VERSION, name, ...(o.token ? { token: o.token } : {}) },
  });
  const inbox: Inbox = { fit: [], evaluate: [] };
  const waiters: { [E in keyof Inbox]: Array<(m: Inbox[E][number]) => void> } = { fit: [], evaluate: [] };
  const deliver = <E extends keyof Inbox>(event: E, m: Inbox[E][number]) => {
    const waiter = waiters[event].shift();
    if (waiter) waiter(m);
    else (inbox[event] as Array<Inbox[E][number]>).push(m);
  };
  socket.on('fit', (m: FitInstruction) => deliver('fit', m));
  socket.on('evaluate', (m: EvaluateInstruction) => deliver('evaluate', m));
  const closed = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
  const numTrain = o.numTrain ?? 100;
  const numVal = o.numVal ?? 10;
  const emit = async (event: string, message: object): Promise<Ack> =>
    parseAck(await socket.timeout(o.ackTimeoutMs ?? 30_000).emitWithAck(event, message));
  const update = (fit: FitInstruction, over: UpdateOverrides = {}) => ({
    protocol: PROTOCOL_VERSION,
    runId: fit.runId,
    round: over.round ?? fit.round,
    modelVersion: over.modelVersion ?? fit.modelVersion,
    numExamples: over.numExamples ?? numTrain,
    metrics: { loss: 1, accuracy: 0.5, seconds: 0.1 },
    weights: over.weights ?? encodeWeights({ specs: fit.weights.specs, values: over.values ?? decodeWeights(fit.weights).values }),
  });
  return new Promise((resolve, reject) => {
    socket.once('connect_error', (err: Error & { data?: { reason?: string } }) => {
      socket.disconnect();
      reject(new Error(`connection refused (${err.data?.reason ?? 'transport'}): ${err.message}`));
    });
    socket.once('welcome', async (welcome: Welcome) => {
      try {
        const ack = await emit('ready', { protocol: PROTOCOL_VERSION, runId: welcome.runId, numTrain, numVal });
        if (!ack.accepted) throw new Error(`ready refused: ${ack.reason} ${ack.message}`);
      } catch (err) {
        socket.disconnect();
        reject(err as Error);
        return;
      }
      resolve({
        socket,
        welcome,
        closed,
        next: (event) =>
          new Promise((r) => {
            const queued = (inbox[event] as unknown[]).shift();
            if (queued !== undefined) r(queued as never);
            else (waiters[event] as Array<(m: unknown) => void>).push(r as (m: unknown) => void);
          }),
        sendUpdate: (fit, over) => emit('fit-result', update(fit, over)),
        sendEvaluation: (ev) =>
          emit('evaluate-result', {
            protocol: PROTOCOL_VERSION,
            runId: ev.runId,
            round: ev.round,
            modelVersion: ev.modelVersion,
            numExamples: numVal,
            loss: 1,
            accuracy: 0.5,
          }),
        updateFrame: (fit) => packetEncoder.encode({ type: 2, nsp: '/', data: ['fit-result', update(fit)], id: 1 })[0]!,
        sendRaw: (bytes) => socket.io.engine.write(bytes as never),
        disconnect: () => socket.disconnect(),
      });
    });
  });
}

/**
 * Answers every evaluation `peer` is sent, in the background, until its connection closes: a peer whose
 * fault is in its updates should not also hold every evaluation phase open until its deadline.
 */
export function answerEvaluations(peer: RawPeer): void {
  void (async () => {
    let open = true;
    void peer.closed.then(() => (open = false));
    while (open) {
      const ev = await Promise.race([peer.next('evaluate'), peer.closed.then(() => undefined)]);
      if (!ev) return;
      await peer.sendEvaluation(ev).catch(() => {});
    }
  })();
}
