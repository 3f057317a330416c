import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io } from 'socket.io-client';
import { describe, expect, test } from 'vitest';
import { createMsgpackParser, type ByteCounter } from '../codec/socketio-parser.js';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import type { ChannelConnector, ChannelServer, ClientChannel, ConnectError } from './channel.js';
import { createInprocHub } from './inproc-channel.js';
import { PROTOCOL_VERSION } from './messages.js';

const LIMIT = 4096;

/** A server and its clients' connector over one transport, the server's parser counting into `counter`. */
interface Side {
  server: ChannelServer;
  connect: ChannelConnector;
  url: string;
}

function inprocSide(counter: ByteCounter): Side {
  const hub = createInprocHub();
  const server = hub.open({ parser: createMsgpackParser(counter, { maxFrameBytes: LIMIT }), maxMessageBytes: LIMIT });
  return { server, connect: hub.connect, url: 'http://unused' };
}

/** socket.io itself, set up as the coordinator sets it up, for the same script to run on. */
async function socketIoSide(counter: ByteCounter): Promise<Side> {
  const http = createServer();
  const ioServer = new Server(http, {
    parser: createMsgpackParser(counter, { maxFrameBytes: LIMIT }),
    maxHttpBufferSize: LIMIT,
    serveClient: false,
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const server: ChannelServer = {
    use: (m) => ioServer.use(m),
    onConnection: (listener) => ioServer.on('connection', (s) => listener(s)),
    broadcast: (event, message) => (ioServer.emit as (e: string, m: unknown) => boolean)(event, message),
    sockets: () => ioServer.sockets.sockets.values(),
    close: () => new Promise((resolve) => ioServer.close(() => resolve())),
  };
  const connect: ChannelConnector = (url, o) =>
    io(url, { parser: createMsgpackParser(), auth: o.auth, transports: ['websocket'], reconnectionAttempts: o.reconnectionAttempts }) as never;
  return { server, connect, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
}

const auth = (name: string) => ({ auth: { protocol: PROTOCOL_VERSION, name }, reconnectionAttempts: 0 });
const next = <T>(channel: ClientChannel, event: 'welcome' | 'run-end' | 'connect_error' | 'disconnect') =>
  new Promise<T>((resolve) => channel.on(event as 'welcome', (raw) => resolve(raw as T)));

/**
 * One conversation every transport must carry the same way: a refused handshake, an accepted one with
 * a welcome, an acknowledged event, an event without ack, a broadcast, the server's disconnect. Returns
 * what each side saw, in order.
 */
async function conversation(side: Side): Promise<string[]> {
  const seen: string[] = [];
  const { server, connect, url } = side;
  let failure: () => void = () => {};
  const failed = new Promise<void>((resolve) => (failure = resolve));
  let serverGone: () => void = () => {};
  const gone = new Promise<void>((resolve) => (serverGone = resolve));
  server.use((socket, next) => {
    const { name } = socket.handshake.auth as { name: string };
    if (name === 'intruder') next(Object.assign(new Error(`no site "${name}"`), { data: { reason: 'unauthorized' } }));
    else {
      (socket.data as { name: string }).name = name;
      next();
    }
  });
  server.onConnection((socket) => {
    seen.push(`server: connection ${(socket.data as { name: string }).name}`);
    socket.emit('welcome', { runId: 'r', weights: new Uint8Array([1, 2, 3]) } as never);
    socket.on('ready', (raw, ack) => {
      seen.push(`server: ready ${JSON.stringify(raw)}`);
      (ack as (a: unknown) => void)({ accepted: true });
    });
    socket.on('failure', (raw) => {
      seen.push(`server: failure ${JSON.stringify(raw)}`);
      failure();
    });
    socket.on('disconnect', (reason) => {
      seen.push(`server: disconnect ${reason}`);
      serverGone();
    });
  });

  const intruder = connect(url, auth('intruder'));
  const refusal = await next<ConnectError>(intruder, 'connect_error');
  seen.push(`intruder: refused ${refusal.data?.reason}: ${refusal.message}`);
  intruder.disconnect();

  const site = connect(url, auth('site-0'));
  const welcome = await next<{ weights: Uint8Array }>(site, 'welcome');
  seen.push(`site: welcome ${Array.from(welcome.weights).join(',')}`);
  seen.push(`site: ack ${JSON.stringify(await site.timeout(5000).emitWithAck('ready', { runId: 'r', numTrain: 1 } as never))}`);
  site.emit('failure', { stage: 'fit', message: 'no data' } as never);
  await failed;
  const ended = next<unknown>(site, 'run-end');
  server.broadcast('run-end', { runId: 'r', reason: 'completed' } as never);
  seen.push(`site: run-end ${JSON.stringify(await ended)}`);
  const left = next<string>(site, 'disconnect');
  for (const socket of server.sockets()) socket.disconnect(true);
  seen.push(`site: disconnect ${await left}`);
  await gone;
  await server.close();
  return seen;
}

describe('in-process channel', () => {
  test('carries a conversation as socket.io does: the same events, refusals, reasons and bytes', async () => {
    const socketBytes = { sent: 0, received: 0 };
    const inprocBytes = { sent: 0, received: 0 };
    const overSocket = await conversation(await socketIoSide(socketBytes));
    const inproc = await conversation(inprocSide(inprocBytes));
    expect(overSocket).toEqual([
      'intruder: refused unauthorized: no site "intruder"',
      'server: connection site-0',
      'site: welcome 1,2,3',
      'server: ready {"runId":"r","numTrain":1}',
      'site: ack {"accepted":true}',
      'server: failure {"stage":"fit","message":"no data"}',
      'site: run-end {"runId":"r","reason":"completed"}',
      'server: disconnect server namespace disconnect',
      'site: disconnect io server disconnect',
    ]);
    expect(inproc).toEqual(overSocket);
    expect(inprocBytes).toEqual(socketBytes);
    expect(inprocBytes.sent).toBeGreaterThan(0);
  });

  test('a message and its ack arrive on later turns, never inside the emit that sent them', async () => {
    const { server, connect, url } = inprocSide({ sent: 0, received: 0 });
    let handled = false;
    server.onConnection((socket) =>
      socket.on('ready', (_raw, ack) => {
        handled = true;
        (ack as (a: unknown) => void)({ accepted: true });
      }),
    );
    const site = connect(url, auth('site-0'));
    await new Promise((resolve) => site.on('connect', () => resolve(undefined)));
    let acked = false;
    const answer = site
      .timeout(5000)
      .emitWithAck('ready', {} as never)
      .then((a) => {
        acked = true;
        return a;
      });
    expect(handled).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(handled).toBe(true);
    expect(acked).toBe(false);
    expect(await answer).toEqual({ accepted: true });
    site.disconnect();
    await server.close();
  });

  test('an event sent before the handshake completes waits, then arrives after the connection', async () => {
    const { server, connect, url } = inprocSide({ sent: 0, received: 0 });
    const order: string[] = [];
    const got = new Promise<void>((resolve) =>
      server.onConnection((socket) => {
        order.push('connection');
        socket.on('failure', () => {
          order.push('failure');
          resolve();
        });
      }),
    );
    const site = connect(url, auth('site-0'));
    site.emit('failure', {} as never);
    await got;
    expect(order).toEqual(['connection', 'failure']);
    site.disconnect();
    await server.close();
  });

  test.each([
    ['a frame over the size limit', 'transport error', (site: ClientChannel) => site.emit('failure', { message: 'x'.repeat(LIMIT) } as never)],
    ['an event under a name socket.io reserves', 'forced close', (site: ClientChannel) => site.emit('disconnect' as 'failure', {} as never)],
  ])('%s is refused by the server before any listener, and the connection closes', async (_, reason, send) => {
    const { server, connect, url } = inprocSide({ sent: 0, received: 0 });
    const heard: string[] = [];
    const closed = new Promise<string>((resolve) =>
      server.onConnection((socket) => {
        socket.on('failure', () => heard.push('failure'));
        socket.on('disconnect', resolve);
      }),
    );
    const site = connect(url, auth('site-0'));
    const siteClosed = next<string>(site, 'disconnect');
    await new Promise((resolve) => site.on('connect', () => resolve(undefined)));
    send(site);
    expect(await closed).toBe(reason);
    expect(await siteClosed).toBe('transport close');
    expect(heard).toEqual([]);
    site.disconnect();
    await server.close();
  });

  test('a closed server drops its clients, which retry and then give up as socket.io-client does', async () => {
    const hub = createInprocHub();
    const server = hub.open({ parser: createMsgpackParser(), maxMessageBytes: LIMIT });
    const serverReasons: string[] = [];
    server.onConnection((socket) => socket.on('disconnect', (reason) => serverReasons.push(reason)));
    const site = hub.connect('http://unused', { auth: auth('site-0').auth, reconnectionAttempts: 1 });
    await new Promise((resolve) => site.on('connect', () => resolve(undefined)));
    const left = next<string>(site, 'disconnect');
    const retried = next<ConnectError>(site, 'connect_error');
    const gaveUp = new Promise<void>((resolve) => site.io.on('reconnect_failed', resolve));
    await server.close();
    expect(serverReasons).toEqual(['server shutting down']);
    expect(await left).toBe('transport close');
    expect((await retried).message).toMatch(/no coordinator is open on this in-process hub/);
    await gaveUp;
    site.disconnect();
  });

  test('a hub carries one open coordinator at a time', async () => {
    const hub = createInprocHub();
    const server = hub.open({ parser: createMsgpackParser(), maxMessageBytes: LIMIT });
    expectFtlError(() => hub.open({ parser: createMsgpackParser(), maxMessageBytes: LIMIT }), ErrorCode.InvalidConfig, /one hub per coordinator/);
    await server.close();
    await hub.open({ parser: createMsgpackParser(), maxMessageBytes: LIMIT }).close();
  });
});
