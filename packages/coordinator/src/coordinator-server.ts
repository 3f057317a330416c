import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  createMsgpackParser,
  ErrorCode,
  FtlError,
  PROTOCOL_VERSION,
  type ByteCounter,
  type ChannelServer,
  type ChannelSocket,
  type ChannelStats,
  type HeadConfig,
  type Logger,
  type ServerToClientEvents,
  type SiteTableSummary,
} from '@ftl/shared';
import { loadServedBackbone, type ServedBackbone } from './backbone-server.js';
import { ClientRegistry, type ClientView } from './client-registry.js';
import { ConsoleLive, type ConsoleSource } from './console-live.js';
import { type ConsoleMode, ConsoleHttp, DEFAULT_CONSOLE_DIR } from './console-server.js';
import { ConsoleSessions } from './console-sessions.js';
import { checkAuthPolicy, handshakeAuth, isLoopback } from './handshake-auth.js';
import { createHttpHandler, withErrorBoundary } from './http-boundary.js';
import { hashClientToken, registerClient, tokenMatches } from './client-tokens.js';
import { socketIoTransport } from './socketio-transport.js';
import type { CoordinatorConfig } from './config.js';
import type { FederatedRun } from './federated-run.js';
import { CoordinatorMetrics } from './metrics.js';
import { modelArchive, type ModelArchive } from './model-archive.js';
import { handleOperatorApi, type OperatorBackend } from './operator-api.js';
import { DEFAULT_PEER_BUDGET } from './peer-budget.js';
import { handleProbe, type ProbeTarget } from './probe-routes.js';
import { latestRoundPrivacy } from './round-privacy.js';
import type { RoundListener } from './round-phases.js';
import { buildRun, headFor } from './run-builder.js';
import type { RunHost } from './run-host.js';
import { RunLifecycle, type RunView } from './run-lifecycle.js';
import type { RunStatus } from './run-states.js';
import type { RunSummary } from './run-summary.js';
import { acceptSite, goodbye } from './site-connection.js';
import type { SiteState, SiteStateKind } from './site-state.js';
import { SiteTracker } from './site-tracker.js';
import type { ServerOptions } from './server-options.js';
import type { Store, StoredRun } from './store/store.js';

export type { ServerOptions } from './server-options.js';

/**
 * The coordinator as a long-lived service: serves the backbone over HTTP(S), holds the live channel
 * (socket.io, or an in-process hub: {@link ServerOptions.transport}) with token auth and the connected
 * clients ({@link ClientRegistry}), answers the operator API (operator-api.ts), and hosts federated runs
 * one after another ({@link RunLifecycle}). Clients stay connected between runs; each run they join
 * starts with a `welcome`. Runs themselves ({@link FederatedRun}) own no sockets.
 *
 * @example
 * const server = await CoordinatorServer.create(config, log, store, { operatorToken });
 * await server.listen();
 * const run = server.createRun({ rounds: 10 });
 * server.startRun(run.id);
 */
export class CoordinatorServer implements RunHost, OperatorBackend {
  readonly bytes: ByteCounter = { sent: 0, received: 0 };
  private readonly http: HttpServer;
  private readonly channel: ChannelServer;
  private readonly clients = new ClientRegistry<ChannelSocket>();
  private readonly runs: RunLifecycle;
  private readonly operatorTokenHash?: string;
  private readonly maxMessageBytes: number;
  /** The server's Prometheus metrics (metrics.ts), on a registry of its own. */
  readonly metrics: CoordinatorMetrics;
  /** Each site's last state per run (site-tracker.ts). */
  private readonly sites: SiteTracker;
  /** The run hosted last, for the ε the metrics report after it ended. */
  private lastRun?: { runId: string; privacy: boolean };
  /** `/metrics` (and the probes) on a port of their own, with `ServerOptions.metricsPort`. */
  private metricsHttp?: HttpServer;
  private readonly metricsAt?: { port: number; host: string };
  /** The operator console: its page and login (console-server.ts) and its live updates (console-live.ts). */
  private readonly web: ConsoleHttp;
  private readonly live: ConsoleLive;

  private constructor(
    /** Server settings, and the defaults for runs created through the API. */
    readonly config: CoordinatorConfig,
    readonly backbone: ServedBackbone,
    private readonly log: Logger,
    readonly store: Store | undefined,
    options: ServerOptions,
  ) {
    if (options.operatorToken !== undefined) this.operatorTokenHash = hashClientToken(options.operatorToken);
    this.sites = new SiteTracker(store, log);
    const metricsPort = options.metricsPort ?? config.metricsPort;
    if (metricsPort !== undefined) this.metricsAt = { port: metricsPort, host: options.metricsHost ?? config.metricsHost ?? '127.0.0.1' };
    this.runs = new RunLifecycle({
      config,
      store,
      log,
      exportRoot: options.exportRoot,
      prepareRun: (c) => this.prepareRun(c),
      welcomeAll: (run) => {
        this.lastRun = { runId: run.runId, privacy: run.config.privacy.mode === 'record' };
        for (const id of this.clients.names()) {
          this.send(id, 'welcome', run.welcome(id));
          this.sites.set(run.runId, id, 'connected');
        }
      },
    });
    this.metrics = new CoordinatorMetrics({
      bytes: this.bytes,
      connectedClients: () => this.clients.size,
      readyClients: () => this.readyForActiveRun(),
      latestPrivacy: () => this.latestPrivacy(),
    });
    this.maxMessageBytes = options.maxMessageBytes ?? this.prepareRun(config).maxMessageBytes();
    // The one-run mode has no operator token: its read-only console is served on loopback only.
    const mode: ConsoleMode = options.operatorToken !== undefined ? 'operator' : isLoopback(config.host) ? 'read-only' : 'closed';
    this.web = new ConsoleHttp({
      dir: options.consoleDir ?? DEFAULT_CONSOLE_DIR,
      mode,
      sessions: new ConsoleSessions(),
      operatorAllowed: (token) => this.operatorAllowed(token) === true,
      secure: config.tls !== undefined,
      log,
    });
    const handle = createHttpHandler({
      backbone,
      api: (req, res) => handleOperatorApi(this, req, res, this.log),
      probes: (req, res) =>
        handleProbe(
          req,
          res,
          this.probeTarget((token) => this.operatorAllowed(token)),
        ),
      console: (req, res) => this.web.handle(req, res),
      log,
    });
    this.http = config.tls ? createHttpsServer({ cert: config.tls.cert, key: config.tls.key }, handle) : createHttpServer(handle);
    this.live = new ConsoleLive(this.http, {
      source: this.consoleSource(),
      authorize: (req) => mode === 'read-only' || this.web.sessionAllows(req),
      mode: mode === 'operator' ? 'operator' : 'read-only',
      log,
    });
    store?.onChange((runId) => this.live.changed(runId));
    this.channel = (options.transport ?? socketIoTransport(this.http)).open({
      parser: createMsgpackParser(this.bytes, { maxFrameBytes: this.maxMessageBytes }),
      maxMessageBytes: this.maxMessageBytes,
    });
    // Every refusal happens here, before `connection`: a refused client never receives a model byte.
    this.channel.use(handshakeAuth({ requireAuth: config.requireAuth, store, log }));
    const site = {
      clients: this.clients,
      activeRun: () => this.runs.activeRun,
      budget: options.peerBudget ?? DEFAULT_PEER_BUDGET,
      log,
      sites: this.sites,
      metrics: this.metrics,
    };
    this.channel.onConnection((socket) => acceptSite(socket, site));
    // After acceptSite: the console reads the registry as that connection left it.
    this.channel.onConnection((socket) => this.live.siteConnected(socket));
    this.clients.onClientReady(() => this.live.siteReady());
  }

  /** What the console shows, read from the runs, the store and the registry (a store-less server has only its active run). */
  private consoleSource(): ConsoleSource {
    const activeItem = () => {
      const live = this.runs.activeRun?.progress();
      return live ? { id: live.runId, status: 'running', rounds: live.rounds, roundsDone: Math.max(0, live.round - 1), live } : undefined;
    };
    return {
      runs: () => (this.store ? this.runs.listRuns() : [activeItem()].filter((r) => r !== undefined)),
      run: (id) => {
        if (!this.store) return { ...activeItem(), rounds: [], sites: [] };
        const rounds = this.store.listRounds(id).map((r) => ({ round: r.round, participants: r.participants, rejected: r.rejected }));
        return { ...this.runs.runView(id), roundSites: rounds };
      },
      clients: () => this.clientViews(),
      progress: () => this.runs.activeRun?.progress(),
    };
  }

  /** Loads the backbone and prepares the servers (not listening yet). */
  static async create(config: CoordinatorConfig, log: Logger, store?: Store, options: ServerOptions = {}): Promise<CoordinatorServer> {
    checkAuthPolicy(config, store, log);
    const backbone = await loadServedBackbone(config.backboneDir, config.featureLayer);
    log.info('backbone', { dir: config.backboneDir, sha256: backbone.sha256, featureLayer: backbone.featureLayer });
    return new CoordinatorServer(config, backbone, log, store, options);
  }

  /** Starts listening; resolves with the bound port and base URL. */
  async listen(): Promise<{ port: number; url: string; metricsUrl?: string }> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.config.port, this.config.host, () => resolve());
    });
    const { port } = this.http.address() as AddressInfo;
    const scheme = this.config.tls ? 'https' : 'http';
    const url = `${scheme}://${this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host}:${port}`;
    this.log.info('listening', { url, operatorApi: this.operatorTokenHash !== undefined });
    const metricsUrl = await this.listenMetrics();
    return { port, url, ...(metricsUrl ? { metricsUrl } : {}) };
  }

  /**
   * With `ServerOptions.metricsPort`: serves `/metrics`, `/healthz` and `/readyz` without a token on a
   * plain HTTP port of their own (loopback unless `metricsHost` says otherwise); resolves with its URL.
   */
  private async listenMetrics(): Promise<string | undefined> {
    if (!this.metricsAt) return undefined;
    const { port, host } = this.metricsAt;
    const target = this.probeTarget('open');
    const notFound = 'not found: this port serves /metrics, /healthz and /readyz\n';
    this.metricsHttp = createHttpServer(
      withErrorBoundary((req, res) => {
        const probe = handleProbe(req, res, target);
        if (probe) return probe;
        res.writeHead(404, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(notFound) });
        res.end(req.method === 'HEAD' ? undefined : notFound);
      }, this.log),
    );
    const http = this.metricsHttp;
    try {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(port, host, () => resolve());
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `the metrics cannot listen on port ${port} of ${host} (${code}); pass another --metrics-port (0 picks a free one) or a --metrics-host of this machine`,
        { cause: err },
      );
    }
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${(http.address() as AddressInfo).port}`;
    this.log.info('metrics-listening', { url: `${url}/metrics` });
    if (!isLoopback(host)) this.log.warn('metrics-open', { host, detail: 'the metrics port needs no token: anyone who reaches it reads them' });
    return url;
  }

  /** What the probes read; `metricsAccess` as {@link ProbeTarget}'s. */
  private probeTarget(metricsAccess: ProbeTarget['metricsAccess']): ProbeTarget {
    return {
      store: this.store,
      backbone: this.backbone,
      connectedClients: () => this.clients.size,
      readyClients: () => this.readyForActiveRun(),
      metrics: this.metrics,
      metricsAccess,
      log: this.log,
    };
  }

  /** Sites ready for the active run; 0 without one. */
  private readyForActiveRun(): number {
    const run = this.runs.activeRun;
    return run ? this.clients.readyClients(run.runId).length : 0;
  }

  /** The latest round's privacy of the active run, or of the run hosted last, when it trains with record-level DP. */
  private latestPrivacy(): { runId: string; privacy: NonNullable<ReturnType<typeof latestRoundPrivacy>> } | undefined {
    const run = this.lastRun;
    if (!run?.privacy || !this.store) return undefined;
    try {
      const privacy = latestRoundPrivacy(this.store.listEvents(run.runId));
      return privacy ? { runId: run.runId, privacy } : undefined;
    } catch (err) {
      // A scrape never fails for a database fault: /readyz reports that.
      this.log.warn('metrics-privacy-unread', { run: run.runId, detail: (err as Error).message });
      return undefined;
    }
  }

  // ---- RunHost ----

  readyClients(runId: string): string[] {
    return this.clients.readyClients(runId);
  }

  declaredCounts(runId: string, clientId: string): { numTrain: number; numVal: number } | undefined {
    return this.clients.declaredCounts(runId, clientId);
  }

  readyStats(runId: string): Array<{ clientId: string; stats: ChannelStats }> {
    return this.clients.readyStats(runId);
  }

  readyTables(runId: string): Array<{ clientId: string } & SiteTableSummary> {
    return this.clients.readyTables(runId);
  }

  send<E extends keyof ServerToClientEvents>(clientId: string, event: E, message: Parameters<ServerToClientEvents[E]>[0]): boolean {
    const socket = this.clients.get(clientId)?.socket;
    if (!socket) return false;
    socket.emit(event, message);
    const asked = INSTRUCTION_STATES[event];
    if (asked) {
      const { runId, round } = message as { runId: string; round: number };
      this.sites.set(runId, clientId, asked, { round });
    }
    return true;
  }

  broadcast<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): void {
    this.channel.broadcast(event, message);
  }

  onClientReady(listener: () => void): () => void {
    return this.clients.onClientReady(listener);
  }

  // ---- runs (run-lifecycle.ts) ----

  /** The head a run trains: sized by the backbone's features at the run's cut point and by the run's label set. */
  headFor(config: CoordinatorConfig): HeadConfig {
    return headFor(this.backbone, config);
  }

  /** Builds a run on this server's backbone (validating what only the model can check: head layers, size). */
  prepareRun(config: CoordinatorConfig): FederatedRun {
    return buildRun({ config, backbone: this.backbone, host: this, log: this.log, store: this.store, maxMessageBytes: this.maxMessageBytes });
  }

  /** Makes `run` the active run before it starts, so clients get its `welcome` now and as they join. */
  attach(run: FederatedRun): void {
    this.runs.attach(run);
  }

  /** Hosts `run` as the active run until it ends or pauses, then clears it. One run at a time. */
  host(run: FederatedRun, onRound?: RoundListener): Promise<RunSummary> {
    return this.runs.hostRun(run, onRound);
  }

  /** Creates a run from a run configuration (an API body), stored as `created`. */
  createRun(body: unknown): StoredRun {
    return this.runs.createRun(body);
  }

  /** Starts a created run, or resumes a paused or interrupted one, in the background. */
  startRun(id: string, mode: 'start' | 'resume' = 'start'): RunStatus {
    return this.runs.startRun(id, mode);
  }

  /** Pauses the active run after its current round. */
  pauseRun(id: string): void {
    this.runs.pauseRun(id);
  }

  /** Stops a run: the active one after its current round; a created or paused one at once. */
  stopRun(id: string): void {
    this.runs.stopRun(id);
  }

  /** Resumes runs a killed coordinator left `running`; returns their ids (the first is started). */
  resumeInterrupted(): string[] {
    return this.runs.resumeInterrupted();
  }

  /** A run with its rounds, and live progress when it is the active run. */
  runView(id: string): RunView {
    return this.runs.runView(id);
  }

  /** Each site's last state in run `id`, by name. */
  runSites(id: string): SiteState[] {
    return this.runs.runSites(id);
  }

  /** Every run, newest first, without rounds. */
  listRuns(): ReturnType<RunLifecycle['listRuns']> {
    return this.runs.listRuns();
  }

  /** The run's global model as a gzipped tar stream (model-archive.ts). */
  async modelArchive(id: string): Promise<ModelArchive> {
    const stored = this.runs.storedRun(id);
    const config = this.runs.runConfig(stored);
    return modelArchive({ store: this.store!, stored, config, backbone: this.backbone, head: this.headFor(config) });
  }

  // ---- clients ----

  /** Registers a client and returns its token (shown once; only the hash is stored). */
  addClient(name: string): { name: string; token: string } {
    return registerClient(this.runs.requireStore(), name);
  }

  /** Revokes a client's token and disconnects it now if it is connected. */
  revokeClient(name: string): void {
    const store = this.runs.requireStore();
    if (!store.getClient(name)) throw new FtlError(ErrorCode.NotFound, `no client "${name}"; list them with: ftl-coordinator clients list`);
    store.revokeClient(name);
    store.appendEvent(null, 'client-revoked', { client: name });
    // Every live socket under the name, not only the registry's entry: none may outlive its revocation.
    for (const socket of [...this.channel.sockets()].filter((s) => (s.data as { name?: string }).name === name)) {
      goodbye(socket, 'revoked', `the operator revoked client "${name}"; ask them for a new registration`);
    }
  }

  /** Registered and connected clients, by name. */
  clientViews(): ClientView[] {
    return this.clients.views(this.store);
  }

  /** Whether the request carries a console session that may use the API (console-server.ts). */
  sessionAllowed(req: IncomingMessage): boolean {
    return this.web.sessionAllows(req);
  }

  /** Whether `token` is the operator token (constant-time). */
  operatorAllowed(token: string | undefined): boolean | 'disabled' {
    if (this.operatorTokenHash === undefined) return 'disabled';
    return token !== undefined && tokenMatches(token, this.operatorTokenHash);
  }

  /** Waits (bounded) for clients to leave, so closing right after `run-end` does not cut it off. */
  async drain(timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (this.clients.size > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  /** Ends any open round, closes every connection and the servers. */
  async close(): Promise<void> {
    await this.live.close();
    const settled = this.runs.interrupt();
    this.broadcast('goodbye', { protocol: PROTOCOL_VERSION, reason: 'shutdown', message: 'the coordinator is shutting down; reconnecting' });
    await this.channel.close();
    await settled();
    if (this.http.listening) await new Promise<void>((resolve) => this.http.close(() => resolve()));
    const metricsHttp = this.metricsHttp;
    if (metricsHttp?.listening) await new Promise<void>((resolve) => metricsHttp.close(() => resolve()));
  }
}

/** The state a site is in once it has been sent each instruction. */
const INSTRUCTION_STATES: Partial<Record<keyof ServerToClientEvents, SiteStateKind>> = {
  fit: 'training',
  evaluate: 'evaluating',
  personalize: 'personalizing',
  'class-sums': 'class-sums',
};
