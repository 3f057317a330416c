import { createLogger, initBackend } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ApiClient } from './api-client.js';
import { defaultCoordinatorConfig } from './config.js';
import { CoordinatorServer } from './coordinator-server.js';
import { Store } from './store/store.js';

const TOKEN = 'operator-token-for-the-size-limits-0123456789';
const MB = 1024 * 1024;

/** A real coordinator with the operator API on a real port (`maxMessageBytes` as `serve --max-message-mb` sets it). */
async function start(maxMessageBytes?: number): Promise<{ server: CoordinatorServer; url: string }> {
  const log = createLogger('test', { level: 'silent' });
  const server = await CoordinatorServer.create({ ...defaultCoordinatorConfig(), port: 0 }, log, Store.open(':memory:'), {
    operatorToken: TOKEN,
    ...(maxMessageBytes !== undefined ? { maxMessageBytes } : {}),
  });
  return { server, url: (await server.listen()).url };
}

const servers: CoordinatorServer[] = [];
let byDefault: string;
let unlimitedMessages: string;
let baseline: number;

// Tests run one file per process, so this process's resident memory is the servers' own.
beforeAll(async () => {
  await initBackend();
  const a = await start();
  // A message limit that admits anything (4 TiB): the model's own limit still holds.
  const b = await start(4 * 1024 ** 4);
  servers.push(a.server, b.server);
  [byDefault, unlimitedMessages] = [a.url, b.url];
  for (const url of [byDefault, unlimitedMessages]) await post(url, { rounds: -1 }); // warm the route, the schema and the JSON paths before measuring
  baseline = process.memoryUsage().rss;
});

afterAll(async () => {
  for (const server of servers) {
    await server.close();
    server.store?.close();
  }
});

async function post(url: string, body: unknown): Promise<{ status: number; code: string; message: string; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/api/runs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });
  const json = (await res.json()) as { error?: { code: string; message: string } };
  return { status: res.status, code: json.error?.code ?? '', message: json.error?.message ?? '', ms: performance.now() - t0 };
}

describe('a run too large to build is refused before anything is allocated', () => {
  // Before sizes were checked by arithmetic, hidden [200000] blocked the server 5 s and took ~2 GB before
  // its 400; [1e6] took 79 s and 9.3 GB; [4e6] passed 9 GB. The bounds are 1 s and +200 MB, far above
  // the microseconds an arithmetic check takes, so they do not depend on the machine's speed.
  test.each<[string, () => string, number[], RegExp]>([
    ['200,000 hidden units', () => byDefault, [200_000], /^run config: each entry of hidden must be ≤ 65536 \(got 200000\)$/],
    ['a million hidden units', () => byDefault, [1_000_000], /^run config: each entry of hidden must be ≤ 65536 \(got 1000000\)$/],
    ['four million hidden units', () => byDefault, [4_000_000], /^run config: each entry of hidden must be ≤ 65536 \(got 4000000\)$/],
    // Within the model limit but far above the server's socket.io message limit: refused by byte size.
    ['a head that fits the model limit but no message', () => byDefault, [60_000], /above this server's message limit of \d+/],
    ['two layers of 65,536 units', () => byDefault, [65_536, 65_536], /above this server's message limit of \d+/],
    // With a message limit that admits anything, the model limit refuses it before a tensor exists.
    [
      'two layers of 65,536 units where messages are unlimited',
      () => unlimitedMessages,
      [65_536, 65_536],
      /^the head would have 4,312,530,954 trainable values, above the limit of 50,000,000; use fewer/,
    ],
  ])('%s: 400 within 1 s naming the limit, resident memory under +200 MB', async (_, server, hidden, message) => {
    const answer = await post(server(), { runId: 'too-big', hidden });
    expect(answer).toMatchObject({ status: 400, code: 'INVALID_CONFIG' });
    expect(answer.message).toMatch(message);
    expect(answer.ms).toBeLessThan(1000);
    expect((process.memoryUsage().rss - baseline) / MB).toBeLessThan(200);
  });

  test('nothing of a refused run is stored, and the server answers as before', async () => {
    const api = new ApiClient({ url: byDefault, token: TOKEN });
    expect(await api.call<{ runs: unknown[] }>('GET', '/api/runs')).toEqual({ runs: [] });
    expect((await api.call<{ id: string }>('POST', '/api/runs', { runId: 'fits', hidden: [64] })).id).toBe('fits');
  });
});
