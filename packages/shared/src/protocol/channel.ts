import type { ClientToServerEvents, ServerToClientEvents } from './events.js';
import type { HandshakeAuth } from './messages.js';

// The live channel between the coordinator and its sites, as each side uses it: the small part of
// socket.io's server and client sockets the code calls. socket.io is one transport behind these types
// (the coordinator's `socketIoTransport`, the client's `socketIoConnect`); an in-process hub
// (inproc-channel.ts) is the other, so a simulation runs the same coordinator and clients without a
// network between them.

/** A socket.io parser (`createMsgpackParser`): the encoder and decoder classes a transport frames packets with. */
export interface ChannelParser {
  Encoder: new () => unknown;
  Decoder: new () => unknown;
}

/** A connection as the handshake middleware sees it, before it is accepted. */
export interface ChannelHandshake {
  readonly handshake: { readonly auth: unknown };
  /** Per-connection data the middleware fills in (the site's name). */
  readonly data: unknown;
  /** Closes the connection's transport: a refused peer holds nothing open. */
  readonly conn: { close(): void };
}

/** A check every connection passes before it is accepted; `next(err)` refuses it, `err.data` going to the peer. */
export type ChannelMiddleware = (socket: ChannelHandshake, next: (err?: Error) => void) => void;

/** One accepted connection, on the coordinator's side. Inbound payloads are `unknown` until parsed. */
export interface ChannelSocket extends ChannelHandshake {
  readonly connected: boolean;
  emit<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): unknown;
  on(event: keyof ClientToServerEvents, listener: (raw: unknown, ack?: unknown) => void): unknown;
  on(event: 'disconnect', listener: (reason: string) => void): unknown;
  /** Closes the connection (`true`: the transport too, as socket.io's `disconnect(true)`). */
  disconnect(close: true): unknown;
}

/** The coordinator's side of the channel: accepts connections and reaches them. */
export interface ChannelServer {
  /** Adds a check every connection passes, in order, before `connection`. */
  use(middleware: ChannelMiddleware): void;
  /** Calls `listener` with every accepted connection. */
  onConnection(listener: (socket: ChannelSocket) => void): void;
  /** Sends one event to every accepted connection (encoded once, as socket.io's broadcast). */
  broadcast<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): void;
  /** Every accepted connection that is still open. */
  sockets(): Iterable<ChannelSocket>;
  /** Closes every connection and stops accepting new ones. */
  close(): Promise<void>;
}

/** What a coordinator needs to open its channel: its parser (with its byte counter) and its message size limit. */
export interface ChannelServerOptions {
  parser: ChannelParser;
  /** The largest message in bytes; a larger one is refused before it is decoded. */
  maxMessageBytes: number;
}

/** Where a coordinator opens its live channel: socket.io on its HTTP server, or an in-process hub. */
export interface ChannelTransport {
  open(options: ChannelServerOptions): ChannelServer;
}

/** An error a client channel reports on `connect_error`; `data.reason` is set when the coordinator refused the handshake. */
export type ConnectError = Error & { data?: { reason?: string } };

/** The events a client sends that the coordinator acknowledges. */
export type AckedEvent = Exclude<keyof ClientToServerEvents, 'failure'>;

/** The client's side of the channel, as socket.io-client's `Socket` offers it. Inbound payloads are `unknown`. */
export interface ClientChannel {
  readonly connected: boolean;
  on(event: 'connect', listener: () => void): unknown;
  on(event: 'disconnect', listener: (reason: string) => void): unknown;
  on(event: 'connect_error', listener: (err: ConnectError) => void): unknown;
  on(event: keyof ServerToClientEvents, listener: (raw: unknown) => void): unknown;
  once(event: 'disconnect', listener: (reason: string) => void): unknown;
  off(event: 'disconnect', listener?: (reason: string) => void): unknown;
  /** Sends the one event without acknowledgement; while disconnected it waits in a buffer until the next connect. */
  emit(event: 'failure', message: Parameters<ClientToServerEvents['failure']>[0]): unknown;
  /** Sends an event and resolves with its acknowledgement (still `unknown`), rejecting after `ms` without one. */
  timeout(ms: number): { emitWithAck<E extends AckedEvent>(event: E, message: Parameters<ClientToServerEvents[E]>[0]): Promise<unknown> };
  connect(): unknown;
  disconnect(): unknown;
  /** The connection manager: `reconnect_failed` when every reconnection attempt has failed. */
  readonly io: { on(event: 'reconnect_failed', listener: () => void): unknown };
}

/** How a client opens its channel. */
export interface ConnectOptions {
  auth: HandshakeAuth;
  /** Reconnection attempts before `reconnect_failed`. */
  reconnectionAttempts: number;
  /** CA certificate(s) (PEM) to trust for https/wss (socket.io only). */
  ca?: string;
}

/**
 * Opens a client's channel to the coordinator at `serverUrl` (the client's default is socket.io-client;
 * an in-process hub's `connect` is the other).
 */
export type ChannelConnector = (serverUrl: string, options: ConnectOptions) => ClientChannel;
