import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Server, type Socket } from 'socket.io';
import { create as createTar } from 'tar';
import {
  checkSiteName, createMsgpackParser, ErrorCode, FtlError, headParameterCount, trainableParameterCount, unfrozenLayerCount, parseHandshakeAuth, parseReady, PROTOCOL_VERSION, rejectionFor, type Ack, type GoodbyeReason, type Ready,
  type ByteCounter, type ClientToServerEvents, type ConnectRefusal, type HandshakeAuth, type HeadConfig, type Logger,
  type ServerToClientEvents, type ChannelStats, type Normalization,
} from '@ftl/shared';
import { loadServedBackbone, type ServedBackbone } from './backbone-server.js';
import { createHttpHandler } from './http-boundary.js';
import { hashClientToken, newClientToken, tokenMatches } from './client-tokens.js';
import { applyRunConfig, type CoordinatorConfig } from './config.js';
import { EXPORT_META_FILE } from './export-model.js';
import { exportRunModel, FederatedRun, type RunHost, type RunProgress, type RunSummary } from './federated-run.js';
import { handleOperatorApi } from './operator-api.js';
import { DEFAULT_PEER_BUDGET, PeerBudget, type PeerBudgetOptions } from './peer-budget.js';
import type { RoundRecord } from './round-table.js';
import { parseRunConfig, type RunConfig } from './run-config.js';
import type { RunStatus, Store, StoredRun } from './store/store.js';

type FtlServer = Server<ClientToServerEvents, ServerToClientEvents>;
type FtlSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

interface ClientEntry {
  id: string;
  socket: FtlSocket;
  ready?: { runId: string; numTrain: number; numVal: number; labels?: string[] };
  /** Channel statistics sent with `ready` (federated normalisation); never shown to the operator API. */
  stats?: ChannelStats;
}

/** Server-level options beyond the coordinator configuration. */
export interface ServerOptions {
  /** Enables the operator REST API under /api, guarded by this bearer token. */
  operatorToken?: string;
  /** Runs started through the API export their model to `<exportRoot>/<runId>` (default `.ftl/runs`). */
  exportRoot?: string;
  /** Largest socket.io message in bytes (default: twice the default run's head, plus 64 KiB). */
  maxMessageBytes?: number;
  /** Each connection's message rate and refusals in a row (default {@link DEFAULT_PEER_BUDGET}). */
  peerBudget?: PeerBudgetOptions;
}

/** A client as the operator sees it: registration (with a store) and live connection state. */
export interface ClientView {
  name: string;
  registered: boolean;
  revoked: boolean;
  createdAt?: string;
  lastSeen?: string;
  connected: boolean;
  /** The run this client reported ready for, with its sample counts and labels. */
  ready?: { runId: string; numTrain: number; numVal: number; labels?: string[] };
}

/** A run as the operator sees it: stored definition and status, rounds, and live progress when running. */
export interface RunView {
  id: string;
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  config: RunConfig;
  /** Rounds recorded so far (the final one of a failed run included). */
  rounds: RoundRecord[];
  /** Present while the run is the server's active run. */
  live?: RunProgress;
  /** What the trust policy left out: a site's update, evaluation or statistics, with the round and why. */
  exclusions: ExclusionRecord[];
}

/** One contribution a run's trust policy left out, as the store recorded it. */
export interface ExclusionRecord {
  type: 'update-excluded' | 'evaluation-excluded' | 'statistics-excluded' | 'class-sums-excluded';
  round: number;
  client: string;
  reason: string;
  message: string;
}

const EXCLUSION_EVENTS: ReadonlySet<string> = new Set(['update-excluded', 'evaluation-excluded', 'statistics-excluded', 'class-sums-excluded']);

const FINAL: readonly RunStatus[] = ['stopped', 'completed', 'failed'];

/** Whether `host` is a loopback address (or name), reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The federated normalisation a run fixed before its first round, if it uses one. */
function storedNormalization(store: Store, runId: string): { normalization?: Normalization } {
  const event = store.listEvents(runId).filter((e) => e.type === 'normalization').at(-1);
  if (!event) return {};
  const { kind, shift, scale } = event.data as Normalization;
  return { normalization: { kind, shift, scale } };
}

/**
 * The coordinator as a long-lived service: serves the backbone over HTTP(S), holds the socket.io
 * channel and the registry of connected clients (with token auth), the operator API, and hosts
 * federated runs one after another. Clients stay connected between runs; each run they join starts
 * with a `welcome`. Runs themselves ({@link FederatedRun}) own no sockets.
 *
 * @example
 * const server = await CoordinatorServer.create(config, log, store, { operatorToken });
 * await server.listen();
 * const run = server.createRun({ rounds: 10 });
 * server.startRun(run.id);
 */
export class CoordinatorServer implements RunHost {
  readonly bytes: ByteCounter = { sent: 0, received: 0 };
  private readonly http: HttpServer;
  private readonly io: FtlServer;
  private readonly clients = new Map<string, ClientEntry>();
  private readonly readyListeners = new Set<() => void>();
  private active?: { run: FederatedRun; done: Promise<RunSummary | undefined>; finish: (s: RunSummary | undefined) => void; started: boolean };
  private readonly operatorTokenHash?: string;
  private readonly maxMessageBytes: number;

  private constructor(
    /** Server settings, and the defaults for runs created through the API. */
    readonly config: CoordinatorConfig,
    readonly backbone: ServedBackbone,
    private readonly log: Logger,
    readonly store: Store | undefined,
    private readonly options: ServerOptions,
  ) {
    if (options.operatorToken !== undefined) this.operatorTokenHash = hashClientToken(options.operatorToken);
    this.maxMessageBytes = options.maxMessageBytes ?? this.prepareRun(config).maxMessageBytes();
    const handle = createHttpHandler({ backbone, api: (req, res) => handleOperatorApi(this, req, res, this.log), log });
    this.http = config.tls ? createHttpsServer({ cert: config.tls.cert, key: config.tls.key }, handle) : createHttpServer(handle);
    this.io = new Server(this.http, {
      parser: createMsgpackParser(this.bytes, { maxFrameBytes: this.maxMessageBytes }),
      // One head update plus envelope; anything larger is refused by engine.io before it is buffered.
      maxHttpBufferSize: this.maxMessageBytes,
      serveClient: false,
      pingInterval: 5000,
      pingTimeout: 10000,
      // A transport that never completes the socket.io handshake is dropped after this, not after 45 s.
      connectTimeout: 10000,
    });
    // Every refusal happens here, before `connection`: a refused client never receives a model byte.
    this.io.use((socket, next) => {
      const refuse = (reason: ConnectRefusal, message: string) => {
        const e = new Error(message) as Error & { data: { reason: ConnectRefusal } };
        e.data = { reason };
        this.log.warn('connection-refused', { reason, detail: message });
        next(e);
        // The refusal is final: close the transport once it has carried the error (socket.io writes it on the
        // next tick; engine.io's close waits for its buffer to drain), so a refused peer holds nothing open.
        setImmediate(() => socket.conn.close());
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
      (socket.data as { name: string }).name = auth.name;
      next();
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
  }

  /** Loads the backbone and prepares the servers (not listening yet). */
  static async create(config: CoordinatorConfig, log: Logger, store?: Store, options: ServerOptions = {}): Promise<CoordinatorServer> {
    if (config.requireAuth && !store) {
      throw new FtlError(ErrorCode.InvalidConfig, 'client auth checks tokens in the database: give --db too');
    }
    if (!config.requireAuth && !isLoopback(config.host)) {
      if (!config.insecureOpen) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `clients without tokens are accepted only on a loopback address, not on --host ${config.host}; register sites with ` +
            '"clients add" and give --require-auth, or pass --insecure-open to let anyone who reaches the port join',
        );
      }
      log.warn('auth-disabled-on-network', {
        host: config.host, detail: 'INSECURE: anyone who reaches this port may join as any site and replace it (--insecure-open)',
      });
    } else if (!config.requireAuth) {
      log.warn('auth-disabled', { detail: 'any local client may join; use --require-auth with tokens from "clients add"' });
    }
    const backbone = await loadServedBackbone(config.backboneDir, config.featureLayer);
    log.info('backbone', { dir: config.backboneDir, sha256: backbone.sha256, featureLayer: backbone.featureLayer });
    return new CoordinatorServer(config, backbone, log, store, options);
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
    this.log.info('listening', { url, operatorApi: this.operatorTokenHash !== undefined });
    return { port, url };
  }

  // ---- RunHost ----

  readyClients(runId: string): string[] {
    return [...this.clients.values()].filter((c) => c.ready?.runId === runId).map((c) => c.id).sort();
  }

  declaredCounts(runId: string, clientId: string): { numTrain: number; numVal: number } | undefined {
    const ready = this.clients.get(clientId)?.ready;
    return ready?.runId === runId ? { numTrain: ready.numTrain, numVal: ready.numVal } : undefined;
  }

  readyStats(runId: string): Array<{ clientId: string; stats: ChannelStats }> {
    return [...this.clients.values()]
      .filter((c) => c.ready?.runId === runId && c.stats)
      .map((c) => ({ clientId: c.id, stats: c.stats! }))
      .sort((a, b) => a.clientId.localeCompare(b.clientId));
  }

  send<E extends keyof ServerToClientEvents>(clientId: string, event: E, message: Parameters<ServerToClientEvents[E]>[0]): boolean {
    const socket = this.clients.get(clientId)?.socket;
    if (!socket) return false;
    (socket.emit as (e: E, m: unknown) => boolean)(event, message);
    return true;
  }

  broadcast<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): void {
    (this.io.emit as (e: E, m: unknown) => boolean)(event, message);
  }

  onClientReady(listener: () => void): () => void {
    this.readyListeners.add(listener);
    return () => this.readyListeners.delete(listener);
  }


  // ---- runs ----

  /** The head a run trains: sized by the backbone's features at the run's cut point and by the run's label set. */
  headFor(config: CoordinatorConfig): HeadConfig {
    const { featureDim } = this.backbone.extractor.at(config.featureLayer ?? this.backbone.featureLayer);
    return {
      featureDim, hidden: config.hidden, classes: config.classes.length,
      ...(config.l2 > 0 ? { l2: config.l2 } : {}), ...(config.dropout > 0 ? { dropout: config.dropout } : {}),
    };
  }

  /** Builds a run on this server's backbone (validating what only the model can check: head layers, size). */
  prepareRun(config: CoordinatorConfig): FederatedRun {
    const head = this.headFor(config);
    // Sized by arithmetic before any tensor exists: an absurd head is refused, never allocated. (Head layers
    // kept on the sites never travel; the run's own check below counts exactly what does.)
    const fx = this.backbone.extractor.at(config.featureLayer ?? this.backbone.featureLayer);
    const unfrozen = unfrozenLayerCount(config.fineTuning, config.rounds);
    const values = unfrozen > 0 && fx.kind === 'layers' ? trainableParameterCount(fx, unfrozen, head) : headParameterCount(head);
    const bytes = values * 4 * 2 + 64 * 1024;
    if (this.maxMessageBytes !== undefined && config.localLayers.length === 0 && bytes > this.maxMessageBytes) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `run ${config.runId}: its largest updates (head and unfrozen backbone layers) take ${bytes} bytes, above this server's message ` +
          `limit of ${this.maxMessageBytes}; use fewer hidden units or unfrozen layers (fineTuning.layers; mode scratch trains them all), or restart serve with a larger --max-message-mb`,
      );
    }
    const run = new FederatedRun(config, this.backbone, head, this, this.log, this.store);
    if (this.maxMessageBytes !== undefined && run.maxMessageBytes() > this.maxMessageBytes) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `run ${config.runId}: its largest updates (head and unfrozen backbone layers) take ${run.maxMessageBytes()} bytes, above this ` +
          `server's message limit of ${this.maxMessageBytes}; use fewer hidden units or unfrozen layers (fineTuning.layers), or restart ` +
          'serve with a larger --max-message-mb',
      );
    }
    return run;
  }

  /**
   * Makes `run` the server's active run before it starts: connected clients get its `welcome` now, and
   * clients that connect from now on get it as they join, so they can prepare and report ready early.
   */
  attach(run: FederatedRun): void {
    if (this.active?.run === run) return;
    if (this.active) {
      throw new FtlError(ErrorCode.Conflict, `run ${this.active.run.runId} is running; stop or pause it before starting ${run.runId}`);
    }
    let finish!: (s: RunSummary | undefined) => void;
    this.active = { run, done: new Promise((resolve) => (finish = resolve)), finish, started: false };
    for (const id of this.clients.keys()) this.send(id, 'welcome', run.welcome(id));
  }

  /** Hosts `run` as the active run until it ends or pauses, then clears it. One run at a time. */
  async host(run: FederatedRun, onRound?: (r: RoundRecord) => void): Promise<RunSummary> {
    this.attach(run);
    const active = this.active!;
    active.started = true;
    try {
      const summary = await run.run(onRound);
      active.finish(summary);
      return summary;
    } catch (err) {
      active.finish(undefined);
      throw err;
    } finally {
      this.active = undefined;
    }
  }


  private requireStore(): Store {
    if (!this.store) throw new FtlError(ErrorCode.InvalidConfig, 'this coordinator keeps no database; start it with ftl-coordinator serve --db FILE');
    return this.store;
  }

  private storedRun(id: string): StoredRun {
    const run = this.requireStore().getRun(id);
    if (!run) throw new FtlError(ErrorCode.NotFound, `no run "${id}"; list runs with: ftl-coordinator runs list`);
    return run;
  }

  /** The full coordinator configuration of a stored run on this server. */
  private runConfig(stored: StoredRun): CoordinatorConfig {
    const run = parseRunConfig(stored.config, `stored config of run ${stored.id}`);
    return { ...applyRunConfig(this.config, run), runId: stored.id, exportDir: join(this.options.exportRoot ?? '.ftl/runs', stored.id) };
  }

  /**
   * Creates a run from a run configuration (an API body): validated, checked against the backbone and
   * stored with status `created`. Starting it is a separate step.
   */
  createRun(body: unknown): StoredRun {
    const store = this.requireStore();
    const run = parseRunConfig(body ?? {}, 'run config');
    const id = run.runId ?? `run-${Date.now().toString(36)}`;
    if (store.getRun(id)) throw new FtlError(ErrorCode.Conflict, `run "${id}" already exists; choose another runId`);
    this.prepareRun({ ...applyRunConfig(this.config, run), runId: id });
    const stored = store.createRun(id, { ...run, runId: id });
    store.appendEvent(id, 'run-created', { rounds: run.rounds, strategy: run.strategy.name });
    this.log.info('run-created', { run: id });
    return stored;
  }

  /** Starts a created run, or resumes a paused or interrupted one, in the background. */
  startRun(id: string, mode: 'start' | 'resume' = 'start'): RunStatus {
    const stored = this.storedRun(id);
    const allowed: RunStatus[] = mode === 'start' ? ['created'] : ['paused', 'running'];
    if (!allowed.includes(stored.status) || this.active?.run.runId === id) {
      const hint = stored.status === 'paused' ? 'resume it' : FINAL.includes(stored.status) ? 'create a new run' : 'wait for it';
      throw new FtlError(ErrorCode.Conflict, `run ${id} is ${this.active?.run.runId === id ? 'already running' : stored.status}; cannot ${mode} it (${hint})`);
    }
    const run = this.prepareRun(this.runConfig(stored));
    this.attach(run); // throws Conflict now, while another run is active
    const done = this.host(run);
    done.then(
      (s) => this.log.info('run-finished', { run: id, reason: s.reason, rounds: s.rounds.length }),
      (err: unknown) => this.log.error('run-failed', { run: id, detail: (err as Error).message }),
    );
    return 'running';
  }

  /** Pauses the active run after its current round. */
  pauseRun(id: string): void {
    this.storedRun(id);
    if (this.active?.run.runId !== id) throw new FtlError(ErrorCode.Conflict, `run ${id} is not running; only the running run can be paused`);
    this.active.run.pause();
  }

  /** Stops a run: the active one after its current round (its model is exported); a created or paused one at once. */
  stopRun(id: string): void {
    const stored = this.storedRun(id);
    if (this.active?.run.runId === id) return this.active.run.stop();
    if (FINAL.includes(stored.status)) throw new FtlError(ErrorCode.Conflict, `run ${id} is already ${stored.status}`);
    this.store!.setRunStatus(id, 'stopped');
    this.store!.appendEvent(id, 'run-end', { reason: 'stopped' });
  }

  /** Resumes runs a killed coordinator left `running`; returns their ids (the first is started). */
  resumeInterrupted(): string[] {
    const interrupted = (this.store?.listRuns() ?? []).filter((r) => r.status === 'running').map((r) => r.id);
    if (interrupted.length > 0 && !this.active) {
      this.log.info('resuming-interrupted-run', { run: interrupted[0] });
      this.startRun(interrupted[0]!, 'resume');
    }
    return interrupted;
  }


  /** A run with its rounds, and live progress when it is the active run. */
  runView(id: string): RunView {
    const stored = this.storedRun(id);
    const live = this.active?.run.runId === id ? this.active.run.progress() : undefined;
    return {
      id, status: stored.status, createdAt: stored.createdAt, updatedAt: stored.updatedAt,
      config: parseRunConfig(stored.config, `stored config of run ${id}`),
      rounds: this.store!.listRounds(id).map((r) => r.record), ...(live ? { live } : {}),
      exclusions: this.store!.listEvents(id).filter((e) => EXCLUSION_EVENTS.has(e.type))
        .map((e) => ({ type: e.type, ...(e.data as Omit<ExclusionRecord, 'type'>) }) as ExclusionRecord),
    };
  }

  /** Every run, newest first, without rounds. */
  listRuns(): Array<Omit<RunView, 'rounds' | 'config' | 'exclusions'> & { roundsDone: number; rounds: number }> {
    return this.requireStore().listRuns().map((r) => ({
      id: r.id, status: r.status, createdAt: r.createdAt, updatedAt: r.updatedAt,
      roundsDone: this.store!.lastCommittedRound(r.id), rounds: (r.config as { rounds?: number }).rounds ?? 0,
      ...(this.active?.run.runId === r.id ? { live: this.active.run.progress() } : {}),
    }));
  }

  /** Registers a client and returns its token (shown once; only the hash is stored). */
  addClient(name: string): { name: string; token: string } {
    // The same rule as the handshake's, so every registered name can connect (and '.', '..', 'constructor' never register).
    try {
      checkSiteName(name, 'client name');
    } catch (err) {
      throw new FtlError(ErrorCode.InvalidConfig, (err as Error).message);
    }
    const store = this.requireStore();
    if (store.getClient(name)) throw new FtlError(ErrorCode.Conflict, `client "${name}" is already registered; revoke it or pick another name`);
    const token = newClientToken();
    store.addClient(name, hashClientToken(token));
    store.appendEvent(null, 'client-added', { client: name });
    return { name, token };
  }

  /** Revokes a client's token and disconnects it now if it is connected. */
  revokeClient(name: string): void {
    const store = this.requireStore();
    if (!store.getClient(name)) throw new FtlError(ErrorCode.NotFound, `no client "${name}"; list them with: ftl-coordinator clients list`);
    store.revokeClient(name);
    store.appendEvent(null, 'client-revoked', { client: name });
    // Every live socket under the name, not only the registry's entry: none may outlive its revocation.
    for (const socket of this.socketsNamed(name)) {
      this.goodbye(socket, 'revoked', `the operator revoked client "${name}"; ask them for a new registration`);
    }
  }

  /** Every connected socket that authenticated as `name`. */
  private socketsNamed(name: string): FtlSocket[] {
    return [...this.io.sockets.sockets.values()].filter((s) => (s.data as { name?: string }).name === name);
  }

  /** Tells a client why its connection ends, then closes it. */
  private goodbye(socket: FtlSocket, reason: GoodbyeReason, message: string): void {
    socket.emit('goodbye', { protocol: PROTOCOL_VERSION, reason, message });
    socket.disconnect(true);
  }

  /** Registered and connected clients, by name. */
  clientViews(): ClientView[] {
    const views = new Map<string, ClientView>();
    for (const c of this.store?.listClients() ?? []) {
      views.set(c.name, {
        name: c.name, registered: true, revoked: c.revoked, createdAt: c.createdAt, connected: false,
        ...(c.lastSeen ? { lastSeen: c.lastSeen } : {}),
      });
    }
    for (const c of this.clients.values()) {
      const view = views.get(c.id) ?? { name: c.id, registered: false, revoked: false, connected: true };
      views.set(c.id, { ...view, connected: true, ...(c.ready ? { ready: c.ready } : {}) });
    }
    return [...views.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The run's global model (backbone + head, a TensorFlow.js folder) as a gzipped tar stream: the final
   * export of a finished run, otherwise built from its newest valid checkpoint.
   */
  async modelArchive(id: string): Promise<{ stream: Readable; fileName: string }> {
    const stored = this.storedRun(id);
    const config = this.runConfig(stored);
    let dir = config.exportDir!;
    let cleanup: (() => Promise<void>) | undefined;
    const exported = FINAL.includes(stored.status) && (await stat(join(dir, EXPORT_META_FILE)).catch(() => undefined));
    if (!exported) {
      const checkpoint = this.store!.latestCheckpoint(id);
      if (!checkpoint) throw new FtlError(ErrorCode.Conflict, `run ${id} has no completed round yet; there is no model to download`);
      dir = await mkdtemp(join(tmpdir(), 'ftl-export-'));
      cleanup = () => rm(dir, { recursive: true, force: true });
      await exportRunModel({
        backbone: this.backbone, config, head: this.headFor(config), weights: { specs: checkpoint.specs, values: checkpoint.values },
        dir, modelVersion: checkpoint.modelVersion, rounds: this.store!.listRounds(id).map((r) => r.record),
        ...storedNormalization(this.store!, id),
      });
    }
    const stream = createTar({ gzip: true, cwd: dir, portable: true }, ['.']) as unknown as Readable;
    if (cleanup) {
      const done = cleanup;
      stream.once('close', () => void done());
      stream.once('end', () => void done());
    }
    return { stream, fileName: `${id}-model.tar.gz` };
  }

  /** Whether `token` is the operator token (constant-time). */
  operatorAllowed(token: string | undefined): boolean | 'disabled' {
    if (this.operatorTokenHash === undefined) return 'disabled';
    return token !== undefined && tokenMatches(token, this.operatorTokenHash);
  }

  private onConnection(socket: FtlSocket): void {
    const name = (socket.data as { name: string }).name;
    const previous = this.clients.get(name);
    if (previous) {
      this.log.info('client-replaced', { client: name });
      this.goodbye(previous.socket, 'replaced', `a newer connection named "${name}" replaced this one; run each site under its own name`);
    }
    const entry: ClientEntry = { id: name, socket };
    this.clients.set(name, entry);
    this.log.info('client-connected', { client: name, clients: this.clients.size });
    const run = this.active?.run;
    if (run) socket.emit('welcome', run.welcome(name));

    const budget = new PeerBudget(this.options.peerBudget ?? DEFAULT_PEER_BUDGET);
    /**
     * The one boundary every message from a site passes: rate-limited, handled, answered. Nothing a peer
     * sends can throw out of it; a peer that floods or keeps sending what is refused loses its connection,
     * and only its own.
     */
    const guard = (event: string, handle: (raw: unknown) => Ack | undefined) => (raw: unknown, ack?: unknown) => {
      const answer = typeof ack === 'function' ? (ack as (a: Ack) => void) : () => {};
      let result: Ack | undefined;
      if (!budget.take()) {
        result = { accepted: false, reason: 'rate-limited', message: `too many messages; a site sends a few per round` };
      } else {
        try {
          result = handle(raw);
        } catch (err) {
          result = rejectionFor(err);
          this.log.warn('message-failed', { client: name, event, detail: (err as Error).message });
        }
      }
      if (result === undefined) return;
      answer(result);
      if (result.accepted) budget.accepted();
      else if (budget.refused() && socket.connected) {
        this.log.warn('client-misbehaving', { client: name, event, reason: result.reason });
        this.goodbye(socket, 'misbehaving', `${event} messages kept being refused (last: ${result.reason}: ${result.message}); fix the site and reconnect`);
      }
    };
    socket.on('ready', guard('ready', (raw) => this.onReady(entry, raw)));
    const closed = { accepted: false, reason: 'round-closed', message: 'no run is active' } as const;
    socket.on('fit-result', guard('fit-result', (raw) => this.active?.run.submitFit(name, raw) ?? closed));
    socket.on('evaluate-result', guard('evaluate-result', (raw) => this.active?.run.submitEvaluate(name, raw) ?? closed));
    socket.on('personalize-result', guard('personalize-result', (raw) => this.active?.run.submitPersonalize(name, raw) ?? closed));
    socket.on('class-sums-result', guard('class-sums-result', (raw) => this.active?.run.submitClassSums(name, raw) ?? closed));
    socket.on('failure', guard('failure', (raw) => {
      this.active?.run.clientFailed(name, raw);
      return undefined;
    }));
    socket.on('disconnect', (reason) => {
      if (this.clients.get(name)?.socket !== socket) return; // replaced by a newer connection
      this.clients.delete(name);
      this.log.info('client-disconnected', { client: name, reason, clients: this.clients.size });
      this.active?.run.clientLeft(name, `disconnected (${reason})`);
    });
  }

  /** A site reports ready for the active run, with its sample counts, labels and (normalised runs) statistics. */
  private onReady(entry: ClientEntry, raw: unknown): Ack {
    let ready: Ready;
    try {
      ready = parseReady(raw);
    } catch (err) {
      // Statistics that contradict themselves are refused by the validator; the run records it like any exclusion.
      const rejection = rejectionFor(err);
      if (rejection.reason === 'bad-statistics') this.active?.run.excludeStatistics(entry.id, rejection.message);
      return rejection;
    }
    const run = this.active?.run;
    if (ready.runId !== run?.runId) {
      return { accepted: false, reason: 'unknown-run', message: run ? `run "${ready.runId}" is not the current run "${run.runId}"` : 'no run is active' };
    }
    // Statistics that do not fit the run leave this site out of the normalisation, never the run out of its rounds.
    const problem = ready.stats ? run.statisticsProblem(ready.stats) : undefined;
    if (problem !== undefined) {
      run.excludeStatistics(entry.id, problem);
      return { accepted: false, reason: 'bad-statistics', message: problem };
    }
    const { labels } = ready;
    entry.ready = { runId: ready.runId, numTrain: ready.numTrain, numVal: ready.numVal, ...(labels ? { labels } : {}) };
    if (ready.stats) entry.stats = ready.stats;
    else delete entry.stats;
    this.log.info('client-ready', { client: entry.id, train: ready.numTrain, val: ready.numVal, ready: this.readyClients(ready.runId).length });
    for (const listener of [...this.readyListeners]) listener();
    return { accepted: true };
  }

  /** Waits (bounded) for clients to leave, so closing right after `run-end` does not cut it off. */
  async drain(timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (this.clients.size > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  /** Ends any open round, closes every connection and the servers. */
  async close(): Promise<void> {
    const active = this.active;
    active?.run.interrupt();
    this.broadcast('goodbye', { protocol: PROTOCOL_VERSION, reason: 'shutdown', message: 'the coordinator is shutting down; reconnecting' });
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    // A run attached but never started has nothing to wind down.
    if (active?.started) await active.done;
    this.active = undefined;
    if (this.http.listening) await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
