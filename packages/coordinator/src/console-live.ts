import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { type ChannelSocket, createMsgpackParser, type Logger } from '@ftl/shared';
import { Server, type Socket } from 'socket.io';
import { sameOrigin } from './console-server.js';
import { RUN_ID_PATTERN } from './run-config.js';

/** Where the console's socket.io server listens on the coordinator's HTTP server. */
export const CONSOLE_SOCKET_PATH = '/console/socket.io';

/** The console's namespace on it. */
export const OPERATOR_NAMESPACE = '/operator';

/** The browser sends only `watch` with a run id: its frames are tiny. */
const MAX_OPERATOR_FRAME = 4096;

/**
 * How often the active run's in-memory progress (phase, answers received) is compared with what the
 * console last saw: it changes without any store write, and the run's logic stays as it is.
 */
const PROGRESS_CHECK_MS = 500;

/** Pushes that follow one change are gathered this long, so a round's several writes go out as one. */
const COALESCE_MS = 30;

/** What a site did, as the console's live log shows it. */
export interface SiteEvent {
  client: string;
  kind: 'connected' | 'ready' | 'disconnected';
  /** How a connection ended (socket.io's reason, e.g. `transport close`). */
  reason?: string;
  /** The active run then, with its phase and round. */
  runId?: string;
  phase?: string;
  round?: number;
  /** ISO 8601. */
  at: string;
}

/** What the console shows, read from the server; every value goes out as it is (JSON-like, MessagePack on the wire). */
export interface ConsoleSource {
  /** The runs list (the API's `GET /api/runs`). */
  runs(): unknown[];
  /** One run as the console shows it (the API's RunView with each round's sites); throws FtlError(NotFound). */
  run(id: string): unknown;
  /** The sites (the API's `GET /api/clients`). */
  clients(): unknown[];
  /** The active run's id and progress, if a run is active. */
  progress(): { runId: string } | undefined;
}

/** Options of {@link ConsoleLive}. */
export interface ConsoleLiveOptions {
  source: ConsoleSource;
  /** Whether the handshake's request may watch (a console session cookie, or the read-only mode). */
  authorize(req: IncomingMessage): boolean;
  /** `operator` or `read-only`: the page shows actions only in the first. */
  mode: 'operator' | 'read-only';
  log: Logger;
}

const runRoom = (id: string) => `run:${id}`;

/**
 * The console's live updates: a socket.io server of its own on the coordinator's HTTP server
 * ({@link CONSOLE_SOCKET_PATH}, namespace {@link OPERATOR_NAMESPACE}), with the project's msgpackr
 * parser. A server of its own, not a namespace of the sites' server, because the sites' parser counts
 * the bytes each round reports and the sites' frame limit is sized for model updates.
 *
 * A connection is accepted when its handshake carries a live console session cookie (or the page is
 * read-only) and comes from this origin. It gets `state` ({mode, runs, clients}) at once, then `runs`,
 * `clients` and `site` as they change; after `watch` with a run id (acknowledged with the run's view)
 * it gets that run's `run` view whenever it changes. Nothing polls on the browser's side: the server
 * pushes after each change it is told of ({@link changed}), and notices the active run's phase itself.
 *
 * @example
 * const live = new ConsoleLive(http, { source, authorize: (req) => web.sessionAllows(req), mode: 'operator', log });
 * store.onChange((runId) => live.changed(runId));
 */
export class ConsoleLive {
  private readonly io: Server;
  private readonly last = new Map<string, string>();
  private readonly dirty = new Set<string>();
  private everything = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly progressTimer: NodeJS.Timeout;
  private closed = false;

  constructor(
    http: HttpServer,
    private readonly o: ConsoleLiveOptions,
  ) {
    this.io = new Server(http, {
      path: CONSOLE_SOCKET_PATH,
      parser: createMsgpackParser(undefined, { maxFrameBytes: MAX_OPERATOR_FRAME }),
      maxHttpBufferSize: MAX_OPERATOR_FRAME,
      serveClient: false,
      pingInterval: 10_000,
      pingTimeout: 10_000,
      connectTimeout: 10_000,
      // A page of another origin never gets a connection, whatever cookies its browser holds.
      allowRequest: (req, callback) => callback(null, sameOrigin(req)),
    });
    // Only the operator namespace answers; the default one refuses every connection.
    this.io.of('/').use((_socket, next) => next(new Error(`connect to the ${OPERATOR_NAMESPACE} namespace`)));
    const nsp = this.io.of(OPERATOR_NAMESPACE);
    nsp.use((socket, next) => {
      if (this.o.authorize(socket.request)) return next();
      next(new Error('not logged in: open / and log in with the operator token'));
    });
    nsp.on('connection', (socket) => this.accept(socket));
    this.progressTimer = setInterval(() => this.checkProgress(), PROGRESS_CHECK_MS);
    this.progressTimer.unref();
  }

  /** How many consoles are connected. */
  get connections(): number {
    return this.io.of(OPERATOR_NAMESPACE).sockets.size;
  }

  /** Something the console shows changed: a run's (by id), or, with no id, the sites or anything. */
  changed(runId?: string | null): void {
    if (this.closed) return;
    if (runId) this.dirty.add(runId);
    else this.everything = true;
    this.flushTimer ??= setTimeout(() => this.flush(), COALESCE_MS);
  }

  /** A site connected on the sites' channel: tells the consoles now, and again when it leaves. */
  siteConnected(socket: ChannelSocket): void {
    const client = (socket.data as { name?: string }).name;
    if (client === undefined) return;
    this.site({ client, kind: 'connected' });
    socket.on('disconnect', (reason) => this.site({ client, kind: 'disconnected', reason }));
  }

  /** A site reported ready for the active run. */
  siteReady(): void {
    this.changed();
  }

  /** Disconnects every console and stops pushing. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.progressTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    // Closing the socket.io server closes the HTTP server too; the coordinator closes that itself afterwards.
    this.io.of(OPERATOR_NAMESPACE).disconnectSockets(true);
    this.io.engine.close();
  }

  private site(event: Omit<SiteEvent, 'at'>): void {
    const active = this.o.source.progress() as { runId: string; phase?: string; round?: number } | undefined;
    const full: SiteEvent = {
      ...event,
      ...(active ? { runId: active.runId, ...(active.phase ? { phase: active.phase } : {}), round: active.round ?? 0 } : {}),
      at: new Date().toISOString(),
    };
    this.io.of(OPERATOR_NAMESPACE).emit('site', full);
    this.changed(active?.runId);
    this.changed();
  }

  private accept(socket: Socket): void {
    const runs = this.read(() => this.o.source.runs(), []);
    const clients = this.read(() => this.o.source.clients(), []);
    socket.emit('state', { mode: this.o.mode, runs, clients });
    let watching: string | undefined;
    socket.on('watch', (id: unknown, ack: unknown) => {
      const answer = typeof ack === 'function' ? (ack as (reply: unknown) => void) : () => {};
      if (watching !== undefined) void socket.leave(runRoom(watching));
      watching = undefined;
      if (id === null) return answer({ ok: true });
      if (typeof id !== 'string' || !RUN_ID_PATTERN.test(id)) return answer({ error: 'a run id is 1–64 letters, digits, ".", "_" or "-"' });
      try {
        const view = this.o.source.run(id);
        watching = id;
        void socket.join(runRoom(id));
        answer({ run: view });
      } catch (err) {
        answer({ error: (err as Error).message });
      }
    });
  }

  /** Pushes what changed since the last push: the runs list, the sites, and each watched run's view. */
  private flush(): void {
    this.flushTimer = undefined;
    if (this.closed) return;
    const nsp = this.io.of(OPERATOR_NAMESPACE);
    const everything = this.everything;
    const dirty = [...this.dirty];
    this.everything = false;
    this.dirty.clear();
    if (nsp.sockets.size === 0) {
      this.last.clear();
      return;
    }
    this.push(
      'runs',
      () => this.o.source.runs(),
      (v) => nsp.emit('runs', v),
    );
    if (everything)
      this.push(
        'clients',
        () => this.o.source.clients(),
        (v) => nsp.emit('clients', v),
      );
    const watched = [...nsp.adapter.rooms.keys()].filter((r) => r.startsWith('run:')).map((r) => r.slice(4));
    for (const id of watched) {
      if (!everything && !dirty.includes(id)) continue;
      this.push(
        runRoom(id),
        () => this.o.source.run(id),
        (v) => nsp.to(runRoom(id)).emit('run', v),
      );
    }
  }

  /** Emits `read()` when it differs from what was last sent under `key`. */
  private push(key: string, read: () => unknown, emit: (value: unknown) => void): void {
    const value = this.read(read, undefined);
    if (value === undefined) return;
    const json = JSON.stringify(value);
    if (this.last.get(key) === json) return;
    this.last.set(key, json);
    emit(value);
  }

  private read<T>(read: () => T, fallback: T): T {
    try {
      return read();
    } catch (err) {
      // A view that cannot be read now (a store error) is pushed with the next change; the run goes on.
      this.o.log.warn('console-view-failed', { detail: (err as Error).message });
      return fallback;
    }
  }

  private checkProgress(): void {
    if (this.connections === 0) return;
    const progress = this.read(() => this.o.source.progress(), undefined);
    const json = JSON.stringify(progress ?? null);
    if (this.last.get('progress') === json) return;
    this.last.set('progress', json);
    if (progress) this.changed(progress.runId);
    else this.changed();
  }
}
