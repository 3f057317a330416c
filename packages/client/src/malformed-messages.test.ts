import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { createLogger, createMsgpackParser, loadBuiltinDataset, loadClientShard, PROTOCOL_VERSION } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { FtlClient } from './client.js';

// A coordinator stand-in on a real socket.io server with the project's msgpack parser: what it sends is
// what a buggy or hostile coordinator could send, byte for byte.
async function fakeCoordinator(onConnection: (emit: (event: string, payload: unknown) => void) => void) {
  const http = createServer();
  const io = new Server(http, { parser: createMsgpackParser(), transports: ['websocket'] });
  io.on('connection', (socket) => onConnection((event, payload) => socket.emit(event, payload)));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => io.close(() => resolve())),
  };
}

const malformed: [string, unknown][] = [
  ['goodbye', { protocol: PROTOCOL_VERSION, reason: 'because', message: 'bye' }],
  ['goodbye', 42],
  ['goodbye', { protocol: PROTOCOL_VERSION, reason: '\u001b[2J\u001b[31mforged\nftl client info fake-line', message: 'bye' }],
  ['run-end', { protocol: PROTOCOL_VERSION, runId: 'r1', reason: 'done' }],
  ['run-end', null],
  ['welcome', {}],
  ['welcome', { protocol: PROTOCOL_VERSION, runId: 'r1', backbone: 'x'.repeat(10_000) }],
  ['fit', { protocol: PROTOCOL_VERSION, runId: 'r1', round: -1 }],
  ['fit', new Uint8Array([1, 2, 3])],
  ['evaluate', []],
  ['personalize', 'x'],
];

describe('client inbound messages', () => {
  test("malformed goodbye, run-end, welcome and fit messages are logged once each and ignored; the client carries on to the run's end", async () => {
    const server = await fakeCoordinator((emit) => {
      for (const [event, payload] of malformed) emit(event, payload);
      emit('run-end', { protocol: PROTOCOL_VERSION, runId: 'r1', reason: 'completed' });
    });
    const lines: string[] = [];
    const log = createLogger('client', { level: 'warn', write: (line) => lines.push(line) });
    const shard = loadClientShard(
      { dataset: 'mnist', partition: { kind: 'iid' }, clients: 1, index: 0, seed: 1, limit: 20 },
      undefined,
      loadBuiltinDataset('mnist'),
    );
    const client = new FtlClient({ serverUrl: server.url, name: 'site-a', shard, cacheDir: '/nonexistent', log, reconnectionAttempts: 0 });
    try {
      const end = await client.run();
      expect(end).toMatchObject({ runId: 'r1', reason: 'completed' });
    } finally {
      client.close();
      await server.close();
    }
    const ignored = lines.filter((l) => l.includes(' warn message-ignored '));
    expect(ignored.map((l) => /event=(\S+)/.exec(l)?.[1])).toEqual(malformed.map(([event]) => event));
    for (const line of ignored) {
      expect(line).not.toContain('\n');
      expect(line).not.toContain('\u001b');
      expect(line.length).toBeLessThan(500); // a huge field is cut, not echoed
    }
    expect(lines.filter((l) => !l.includes('message-ignored'))).toEqual([]);
  });
});
