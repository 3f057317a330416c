import { PacketType } from 'socket.io-parser';
import { createMsgpackParser } from '../codec/socketio-parser.js';
import { ErrorCode, FtlError } from '../errors.js';
import type {
  AckedEvent,
  ChannelConnector,
  ChannelMiddleware,
  ChannelServer,
  ChannelServerOptions,
  ChannelSocket,
  ChannelTransport,
  ClientChannel,
  ConnectError,
  ConnectOptions,
} from './channel.js';
import type { ClientToServerEvents, ServerToClientEvents } from './events.js';

/** A socket.io packet, as both sides build it (socket.io's own shapes, so every frame has the same bytes). */
interface Packet {
  type: PacketType;
  nsp: string;
  data?: unknown;
  id?: number;
  options?: { compress: boolean };
}

interface PacketEncoder {
  encode(packet: Packet): Uint8Array[];
}

interface PacketDecoder {
  add(chunk: unknown): void;
  on(event: 'decoded', listener: (packet: Packet) => void): unknown;
}

const NSP = '/';
// socket.io-client's defaults as the socket.io connector sets them, without the jitter: 0.5 s doubling up to 5 s.
const RECONNECT_DELAY_MS = 500;
const RECONNECT_DELAY_MAX_MS = 5000;

type Listener = (...args: never[]) => void;

/** Listeners by event name; a `once` listener is removed before it runs. */
class Listeners {
  private readonly byEvent = new Map<string, Array<{ fn: Listener; once: boolean }>>();

  add(event: string, fn: Listener, once = false): void {
    this.byEvent.set(event, [...(this.byEvent.get(event) ?? []), { fn, once }]);
  }

  remove(event: string, fn?: Listener): void {
    const kept = fn ? (this.byEvent.get(event) ?? []).filter((l) => l.fn !== fn) : [];
    this.byEvent.set(event, kept);
  }

  emit(event: string, ...args: unknown[]): void {
    for (const l of this.byEvent.get(event) ?? []) {
      if (l.once)
        this.byEvent.set(
          event,
          (this.byEvent.get(event) ?? []).filter((x) => x !== l),
        );
      (l.fn as (...a: unknown[]) => void)(...args);
    }
  }
}

/**
 * One direction of a connection: what is sent arrives in order, one item per turn of the event loop and
 * never inside the call that sent it, as over a socket (an ack is never answered re-entrantly).
 */
class Pipe {
  private readonly queue: Array<() => void> = [];
  private scheduled = false;

  push(item: () => void): void {
    this.queue.push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.deliverOne);
  }

  private readonly deliverOne = (): void => {
    try {
      this.queue.shift()?.();
    } finally {
      if (this.queue.length > 0) setImmediate(this.deliverOne);
      else this.scheduled = false;
    }
  };
}

/**
 * One client's connection to the hub's server: a pipe each way, each end's parser (the server's with the
 * coordinator's byte counter and size limit), and the server's socket for it. Either end may close it;
 * what the closing end sent before still arrives, then the other end sees it closed.
 */
class Connection {
  readonly socket: ServerSocket;
  private serverOpen = true;
  private clientOpen = true;
  private readonly toServer = new Pipe();
  private readonly toClient = new Pipe();
  private readonly serverEncoder: PacketEncoder;
  private readonly serverDecoder: PacketDecoder;
  private readonly clientEncoder: PacketEncoder;
  private readonly clientDecoder: PacketDecoder;

  constructor(
    private readonly server: InprocServer,
    private readonly client: InprocClient,
    id: string,
  ) {
    const clientParser = createMsgpackParser();
    this.serverEncoder = new server.parser.Encoder() as PacketEncoder;
    this.serverDecoder = new server.parser.Decoder() as PacketDecoder;
    this.clientEncoder = new clientParser.Encoder() as PacketEncoder;
    this.clientDecoder = new clientParser.Decoder() as PacketDecoder;
    this.socket = new ServerSocket(this, server, id);
    this.serverDecoder.on('decoded', (packet) => this.socket.receive(packet));
    this.clientDecoder.on('decoded', (packet) => this.client.receive(this, packet));
  }

  get open(): boolean {
    return this.serverOpen;
  }

  /** Encodes `packet` with the server's encoder (counted as sent) and sends it to the client. */
  sendToClient(packet: Packet): void {
    if (this.serverOpen) this.writeToClient(this.serverEncoder.encode(packet));
  }

  /** Sends frames the server has encoded already (a broadcast is encoded once for everyone). */
  writeToClient(frames: readonly Uint8Array[]): void {
    if (!this.serverOpen) return;
    for (const frame of frames) this.toClient.push(() => this.readAtClient(frame));
  }

  /** Encodes `packet` with the client's encoder and sends it to the server. */
  sendToServer(packet: Packet): void {
    if (!this.clientOpen) return;
    for (const frame of this.clientEncoder.encode(packet)) this.toServer.push(() => this.readAtServer(frame));
  }

  /** The server closes the connection: its socket is closed now, the client hears of it after what was sent. */
  closeFromServer(reason: string): void {
    if (!this.serverOpen) return;
    this.serverOpen = false;
    this.server.forget(this);
    this.socket.closed(reason);
    this.toClient.push(() => {
      if (!this.clientOpen) return;
      this.clientOpen = false;
      this.client.transportClosed(this, 'transport close');
    });
  }

  /** The client closes the connection: the server hears of it after what the client sent. */
  closeFromClient(reason: string): void {
    if (!this.clientOpen) return;
    this.clientOpen = false;
    this.client.transportClosed(this, reason);
    this.toServer.push(() => {
      if (!this.serverOpen) return;
      this.serverOpen = false;
      this.server.forget(this);
      this.socket.closed('transport close');
    });
  }

  private readAtServer(frame: Uint8Array): void {
    if (!this.serverOpen) return;
    // engine.io refuses a message over the limit before the parser sees (or counts) it, and drops the connection.
    if (frame.byteLength > this.server.maxMessageBytes) {
      this.closeFromServer('transport error');
      return;
    }
    try {
      this.serverDecoder.add(frame);
    } catch {
      // As socket.io does with a frame its parser refuses: the connection is closed, nothing is delivered.
      this.closeFromServer('forced close');
    }
  }

  private readAtClient(frame: Uint8Array): void {
    if (!this.clientOpen) return;
    try {
      this.clientDecoder.add(frame);
    } catch {
      this.closeFromClient('parse error');
    }
  }
}

/** The coordinator's socket for one connection: the same events, acks and reasons as a socket.io server socket. */
class ServerSocket implements ChannelSocket {
  readonly data: Record<string, unknown> = {};
  readonly handshake: { auth: unknown } = { auth: undefined };
  readonly conn = { close: () => this.connection.closeFromServer('forced close') };
  connected = false;
  private handshaking = false;
  private readonly listeners = new Listeners();

  constructor(
    private readonly connection: Connection,
    private readonly server: InprocServer,
    readonly id: string,
  ) {}

  emit<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): boolean {
    this.connection.sendToClient({ type: PacketType.EVENT, data: [event, message], nsp: NSP });
    return true;
  }

  /** Sends frames encoded already (a broadcast's). */
  write(frames: readonly Uint8Array[]): void {
    this.connection.writeToClient(frames);
  }

  on(event: string, listener: Listener): this {
    this.listeners.add(event, listener);
    return this;
  }

  disconnect(_close: true): this {
    if (!this.connected) return this;
    this.connection.sendToClient({ type: PacketType.DISCONNECT, nsp: NSP });
    this.closed('server namespace disconnect');
    this.connection.closeFromServer('server namespace disconnect');
    return this;
  }

  /** The connection closed (or this socket did): `disconnect` once, with socket.io's reason. */
  closed(reason: string): void {
    if (!this.connected) return;
    this.connected = false;
    this.server.accepted.delete(this);
    this.listeners.emit('disconnect', reason);
  }

  receive(packet: Packet): void {
    if (packet.type === PacketType.CONNECT) this.handshakeWith(packet.data ?? {});
    else if (packet.type === PacketType.DISCONNECT) this.closed('client namespace disconnect');
    else if (this.connected && (packet.type === PacketType.EVENT || packet.type === PacketType.BINARY_EVENT)) {
      const [event, ...args] = packet.data as [string, ...unknown[]];
      if (packet.id !== undefined) args.push(this.ackFor(packet.id));
      this.listeners.emit(event, ...args);
    }
  }

  /** Runs every middleware in order, as socket.io's namespace does; the first error refuses the connection. */
  private handshakeWith(auth: unknown): void {
    if (this.handshaking || this.connected) return;
    this.handshaking = true;
    this.handshake.auth = auth;
    const middlewares: ChannelMiddleware[] = [...this.server.middlewares];
    const next = (err?: Error): void => {
      if (!this.connection.open) return; // closed while the middleware ran: socket.io ignores it too
      if (err) {
        const data = (err as ConnectError).data;
        this.connection.sendToClient({ type: PacketType.CONNECT_ERROR, data: { message: err.message, data }, nsp: NSP });
        return;
      }
      const middleware = middlewares.shift();
      if (middleware) middleware(this, next);
      else this.accept();
    };
    next();
  }

  private accept(): void {
    this.connected = true;
    this.server.accepted.add(this);
    this.connection.sendToClient({ type: PacketType.CONNECT, data: { sid: this.id }, nsp: NSP });
    for (const listener of [...this.server.connectionListeners]) listener(this);
  }

  private ackFor(id: number): (...args: unknown[]) => void {
    let sent = false;
    return (...args) => {
      if (sent) return;
      sent = true;
      this.connection.sendToClient({ id, type: PacketType.ACK, data: args, nsp: NSP });
    };
  }
}

/** The coordinator's side of a hub: accepts the hub's connections while it is open. */
class InprocServer implements ChannelServer {
  readonly middlewares: ChannelMiddleware[] = [];
  readonly connectionListeners: Array<(socket: ChannelSocket) => void> = [];
  readonly accepted = new Set<ServerSocket>();
  readonly parser: ChannelServerOptions['parser'];
  readonly maxMessageBytes: number;
  private readonly connections = new Set<Connection>();
  private readonly broadcaster: PacketEncoder;
  private nextId = 0;

  constructor(
    options: ChannelServerOptions,
    private readonly release: () => void,
  ) {
    this.parser = options.parser;
    this.maxMessageBytes = options.maxMessageBytes;
    this.broadcaster = new options.parser.Encoder() as PacketEncoder;
  }

  /** A new connection from `client`, handshaking until its CONNECT has passed the middleware. */
  connection(client: InprocClient): Connection {
    // Twenty characters, as socket.io's ids, so the CONNECT answer has the same size.
    const c = new Connection(this, client, `inproc-${String(++this.nextId).padStart(13, '0')}`);
    this.connections.add(c);
    return c;
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  use(middleware: ChannelMiddleware): void {
    this.middlewares.push(middleware);
  }

  onConnection(listener: (socket: ChannelSocket) => void): void {
    this.connectionListeners.push(listener);
  }

  broadcast<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): void {
    const frames = this.broadcaster.encode({ type: PacketType.EVENT, data: [event, message], nsp: NSP });
    for (const socket of this.accepted) socket.write(frames);
  }

  sockets(): Iterable<ChannelSocket> {
    return [...this.accepted];
  }

  async close(): Promise<void> {
    this.release();
    for (const c of [...this.connections]) {
      c.socket.closed('server shutting down');
      c.closeFromServer('server shutting down');
    }
  }
}

/** A client's channel through a hub: socket.io-client's behaviour (buffering, acks, reasons, reconnection) in memory. */
class InprocClient implements ClientChannel {
  connected = false;
  readonly io: { on(event: 'reconnect_failed', listener: () => void): unknown };
  private readonly listeners = new Listeners();
  private readonly manager = new Listeners();
  private connection?: Connection;
  /** Wants to be connected: false after `disconnect()`, a refusal or the server's disconnect. */
  private active = false;
  private timer?: ReturnType<typeof setTimeout>;
  private attempts = 0;
  private ids = 0;
  private readonly acks = new Map<number, (err: Error | null, value?: unknown) => void>();
  private sendBuffer: Packet[] = [];

  constructor(
    private readonly serverNow: () => InprocServer | undefined,
    private readonly options: ConnectOptions,
  ) {
    this.io = {
      on: (event, listener) => {
        this.manager.add(event, listener);
        return this.io;
      },
    };
    this.connect();
  }

  on(event: string, listener: Listener): this {
    this.listeners.add(event, listener);
    return this;
  }

  once(event: string, listener: Listener): this {
    this.listeners.add(event, listener, true);
    return this;
  }

  off(event: string, listener?: Listener): this {
    this.listeners.remove(event, listener);
    return this;
  }

  emit(event: 'failure', message: Parameters<ClientToServerEvents['failure']>[0]): this {
    this.send({ type: PacketType.EVENT, data: [event, message], options: { compress: true }, nsp: NSP });
    return this;
  }

  timeout(ms: number): { emitWithAck<E extends AckedEvent>(event: E, message: Parameters<ClientToServerEvents[E]>[0]): Promise<unknown> } {
    return {
      emitWithAck: (event, message) =>
        new Promise((resolve, reject) => {
          const id = this.ids++;
          const timer = setTimeout(() => {
            this.acks.delete(id);
            this.sendBuffer = this.sendBuffer.filter((p) => p.id !== id);
            reject(new Error('operation has timed out'));
          }, ms);
          this.acks.set(id, (err, value) => {
            clearTimeout(timer);
            if (err) reject(err);
            else resolve(value);
          });
          // socket.io-client's packet, `options` included: the parser writes it, so the bytes are the same.
          this.send({ type: PacketType.EVENT, data: [event, message], options: { compress: true }, id, nsp: NSP });
        }),
    };
  }

  connect(): this {
    if (this.connected) return this;
    this.active = true;
    if (!this.connection && this.timer === undefined) this.open();
    return this;
  }

  disconnect(): this {
    const wasConnected = this.connected;
    if (wasConnected) this.connection?.sendToServer({ type: PacketType.DISCONNECT, nsp: NSP });
    this.active = false;
    this.dropConnection('io client disconnect');
    if (wasConnected) this.onclose('io client disconnect');
    return this;
  }

  /** A packet the client's decoder read from `connection`. */
  receive(connection: Connection, packet: Packet): void {
    if (connection !== this.connection) return;
    switch (packet.type) {
      case PacketType.CONNECT:
        this.connected = true;
        this.attempts = 0;
        for (const p of this.sendBuffer.splice(0)) connection.sendToServer(p);
        this.listeners.emit('connect');
        break;
      case PacketType.CONNECT_ERROR: {
        // A refusal is final: no reconnection, as socket.io-client.
        this.active = false;
        this.dropConnection('io client disconnect');
        const body = (packet.data ?? {}) as { message?: unknown; data?: unknown };
        const err = new Error(String(body.message)) as ConnectError;
        if (body.data !== undefined) err.data = body.data as ConnectError['data'];
        this.listeners.emit('connect_error', err);
        break;
      }
      case PacketType.EVENT:
      case PacketType.BINARY_EVENT:
        if (this.connected) this.listeners.emit(...(packet.data as [string, ...unknown[]]));
        break;
      case PacketType.ACK:
      case PacketType.BINARY_ACK: {
        const ack = this.acks.get(packet.id ?? -1);
        this.acks.delete(packet.id ?? -1);
        ack?.(null, (packet.data as unknown[])[0]);
        break;
      }
      case PacketType.DISCONNECT:
        this.active = false;
        this.dropConnection('io server disconnect');
        if (this.connected) this.onclose('io server disconnect');
        break;
    }
  }

  /** `connection` closed under this client: `disconnect` if it was connected, then reconnect unless told not to. */
  transportClosed(connection: Connection, reason: string): void {
    if (connection !== this.connection) return;
    this.connection = undefined;
    if (this.connected) this.onclose(reason);
    this.reconnect();
  }

  private send(packet: Packet): void {
    if (this.connected && this.connection) this.connection.sendToServer(packet);
    else this.sendBuffer.push(packet);
  }

  private open(): void {
    const server = this.serverNow();
    if (!server) {
      // As a refused TCP connection: an error a turn later, then the reconnection schedule.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (!this.active) return;
        const err: ConnectError = new Error('no coordinator is open on this in-process hub; create it with the hub as its transport');
        this.listeners.emit('connect_error', err);
        this.reconnect();
      }, 0);
      return;
    }
    this.connection = server.connection(this);
    this.connection.sendToServer({ type: PacketType.CONNECT, data: this.options.auth, nsp: NSP });
  }

  private reconnect(): void {
    if (!this.active || this.timer !== undefined || this.connection) return;
    if (this.attempts >= this.options.reconnectionAttempts) {
      this.attempts = 0;
      this.manager.emit('reconnect_failed');
      return;
    }
    const delay = Math.min(RECONNECT_DELAY_MS * 2 ** this.attempts, RECONNECT_DELAY_MAX_MS);
    this.attempts++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.active) this.open();
    }, delay);
  }

  /** Leaves the current connection (closing it) and any pending reconnection. */
  private dropConnection(reason: string): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const c = this.connection;
    this.connection = undefined;
    c?.closeFromClient(reason);
  }

  private onclose(reason: string): void {
    this.connected = false;
    this.listeners.emit('disconnect', reason);
    // Acks still waiting for an answer will not get one; those of buffered packets wait for the next connection.
    for (const [id, ack] of [...this.acks]) {
      if (this.sendBuffer.some((p) => p.id === id)) continue;
      this.acks.delete(id);
      ack(new Error('socket has been disconnected'));
    }
  }
}

/** An in-process hub: a {@link ChannelTransport} for one coordinator, and the connector its clients use. */
export interface InprocHub extends ChannelTransport {
  /**
   * Opens a client's channel to the coordinator open on this hub (`serverUrl` is not used: a hub carries
   * one coordinator). Detached use is fine: `{ connect: hub.connect }`.
   */
  readonly connect: ChannelConnector;
}

/**
 * A live channel in memory, for running the real coordinator and real clients in one thread without
 * sockets: the coordinator opens it as its transport and the clients connect through it. Every packet is
 * what socket.io would send, framed by the same msgpack parser on both sides (the coordinator's with its
 * byte counter and size limit), so validation, size limits, refusals and byte counts are those of a
 * socket; the handshake middleware runs for every connection, and every message (an ack too) arrives
 * on a later turn of the event loop, in order. Disconnect reasons and reconnection follow socket.io's.
 * The backbone is not carried here: clients still download it over HTTP from the coordinator's
 * (loopback) server, so the coordinator still listens and clients get its URL.
 *
 * @example
 * const hub = createInprocHub();
 * const coordinator = await Coordinator.create(config, log, undefined, { transport: hub });
 * const { url } = await coordinator.listen();
 * const client = new FtlClient({ serverUrl: url, name: 'site-0', shard, cacheDir, log, connect: hub.connect });
 */
export function createInprocHub(): InprocHub {
  let server: InprocServer | undefined;
  return {
    open(options) {
      if (server) {
        throw new FtlError(ErrorCode.InvalidConfig, 'this in-process hub already carries an open coordinator; create one hub per coordinator');
      }
      const opened = new InprocServer(options, () => {
        if (server === opened) server = undefined;
      });
      server = opened;
      return opened;
    },
    connect: (_serverUrl, options) => new InprocClient(() => server, options),
  };
}
