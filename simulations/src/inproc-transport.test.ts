import { join } from 'node:path';
import { FtlClient, socketIoConnect } from '@ftl/client';
import {
  Coordinator,
  defaultCoordinatorConfig,
  hashClientToken,
  newClientToken,
  Store,
  type CoordinatorConfig,
  type RoundRecord,
} from '@ftl/coordinator';
import {
  createInprocHub,
  createLogger,
  ErrorCode,
  initBackend,
  loadBuiltinDataset,
  loadClientShard,
  parseAck,
  PROTOCOL_VERSION,
  type Ack,
  type ChannelConnector,
  type ConnectError,
  type FitInstruction,
  type ImageDataset,
  type Welcome,
} from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { scratch } from './test-federation.js';

// The same coordinator and the same clients over both transports: loopback socket.io and the in-process
// hub. Only the channel differs, so a run's figures, a refusal's reason and a refused handshake must too not.

type Transport = 'socket' | 'inproc';

const log = createLogger('test', { level: 'silent' });
let mnist: ImageDataset | undefined;

/** A real coordinator on a free loopback port over `transport`, and the connector its clients use. */
async function start(transport: Transport, over: Partial<CoordinatorConfig>, store?: Store) {
  await initBackend();
  const hub = transport === 'inproc' ? createInprocHub() : undefined;
  const config: CoordinatorConfig = {
    ...defaultCoordinatorConfig(),
    port: 0,
    exportDir: undefined,
    waitTimeoutMs: 60_000,
    roundDeadlineMs: 60_000,
    ...over,
  };
  const coordinator = await Coordinator.create(config, log, store, hub ? { transport: hub } : {});
  const { url } = await coordinator.listen();
  const connect: ChannelConnector = hub ? hub.connect : socketIoConnect;
  return { coordinator, url, connect };
}

/** Runs 2 sites for 2 rounds on 400 MNIST images and returns every round's record without its timing. */
async function federation(transport: Transport, cacheDir: string): Promise<Omit<RoundRecord, 'seconds'>[]> {
  const { coordinator, url, connect } = await start(transport, {
    runId: 'transport-run',
    rounds: 2,
    minClients: 2,
    fit: { ...defaultCoordinatorConfig().fit, epochs: 2, batchSize: 16 },
  });
  mnist ??= loadBuiltinDataset('mnist');
  const clients = [0, 1].map(
    (index) =>
      new FtlClient({
        serverUrl: url,
        name: `site-${index}`,
        shard: loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 2, index, seed: 3, limit: 400 }, undefined, mnist),
        // One cache per site for both transports: the features are computed once, then read back exactly.
        cacheDir: join(cacheDir, `site-${index}`),
        log,
        connect,
      }),
  );
  const rows: RoundRecord[] = [];
  try {
    const ends = clients.map((c) => c.run());
    const summary = await coordinator.run((r) => rows.push(r));
    await Promise.all(ends);
    expect(summary.reason).toBe('completed');
  } finally {
    for (const c of clients) c.close();
    await coordinator.close();
  }
  return rows.map(({ seconds: _, ...rest }) => rest);
}

/** Connects a bare channel as `name`: resolves with the welcome, or with the refusal's reason. */
function connectPeer(connect: ChannelConnector, url: string, name: string, token?: string) {
  const channel = connect(url, { auth: { protocol: PROTOCOL_VERSION, name, ...(token ? { token } : {}) }, reconnectionAttempts: 0 });
  const joined = new Promise<{ welcome: Welcome } | { refused: string }>((resolve) => {
    channel.on('welcome', (raw) => resolve({ welcome: raw as Welcome }));
    channel.on('connect_error', (err: ConnectError) => resolve({ refused: err.data?.reason ?? `transport: ${err.message}` }));
  });
  const ask = async (event: 'ready' | 'fit-result', message: unknown): Promise<Ack> =>
    parseAck(await channel.timeout(10_000).emitWithAck(event, message as never));
  return { channel, joined, ask };
}

describe('the in-process transport runs the same coordinator and clients as socket.io', () => {
  test('a 2-site, 2-round federation gives the same rounds (metrics, counts and bytes) over both', async () => {
    const cacheDir = await scratch('inproc-fed');
    const socket = await federation('socket', cacheDir);
    const inproc = await federation('inproc', cacheDir);
    expect(socket).toHaveLength(2);
    expect(socket.map((r) => [r.status, r.accepted, r.selected])).toEqual([
      ['aggregated', 2, 2],
      ['aggregated', 2, 2],
    ]);
    expect(socket[0]!.bytesIn).toBeGreaterThan(0);
    expect(inproc).toEqual(socket);
  });

  test('malformed messages are refused with the same acknowledgements over both', async () => {
    const answers = await Promise.all(
      (['socket', 'inproc'] as const).map(async (transport) => {
        const { coordinator, url, connect } = await start(transport, { runId: 'malformed-run', rounds: 1, minClients: 1 });
        const peer = connectPeer(connect, url, 'site-0');
        const fit = new Promise<FitInstruction>((resolve) => peer.channel.on('fit', (raw) => resolve(raw as FitInstruction)));
        let running: Promise<unknown> | undefined;
        try {
          const joined = await peer.joined;
          if (!('welcome' in joined)) throw new Error(`refused: ${joined.refused}`);
          const runId = joined.welcome.runId;
          const refused = [
            await peer.ask('ready', 'not a message'),
            await peer.ask('ready', { protocol: PROTOCOL_VERSION, runId, numTrain: -1, numVal: 10 }),
            await peer.ask('ready', { protocol: PROTOCOL_VERSION, runId: 'another-run', numTrain: 10, numVal: 10 }),
            await peer.ask('fit-result', { protocol: PROTOCOL_VERSION, runId, round: 1, modelVersion: 0, weights: 'not weights' }),
          ];
          expect(await peer.ask('ready', { protocol: PROTOCOL_VERSION, runId, numTrain: 10, numVal: 10 })).toEqual({ accepted: true });
          running = coordinator.run().catch(() => undefined);
          const { round, modelVersion } = await fit;
          const update = {
            protocol: PROTOCOL_VERSION,
            runId,
            round,
            modelVersion,
            numExamples: 10,
            metrics: { loss: 1, accuracy: 0.5, seconds: 0.1 },
          };
          refused.push(
            await peer.ask('fit-result', { ...update, weights: 'not weights' }),
            await peer.ask('fit-result', { ...update, weights: { specs: [{ name: 'w', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) } }),
          );
          return refused;
        } finally {
          peer.channel.disconnect();
          await coordinator.close();
          await running;
        }
      }),
    );
    const [socket, inproc] = answers;
    expect(socket!.map((a) => !a.accepted && a.reason)).toEqual([
      'malformed',
      'bad-sample-count',
      'unknown-run',
      'round-closed',
      'malformed',
      'wrong-shape',
    ]);
    expect(inproc).toEqual(socket);
  });

  test.each(['socket', 'inproc'] as const)(
    'over %s, the handshake middleware refuses a bad token, and the client fails as unauthorized',
    async (transport) => {
      const dir = await scratch('inproc-auth');
      const store = Store.open(join(dir, 'coordinator.db'));
      const token = newClientToken();
      store.addClient('site-0', hashClientToken(token));
      const { coordinator, url, connect } = await start(transport, { runId: 'auth-run', rounds: 1, minClients: 1, requireAuth: true }, store);
      try {
        expect(await connectPeer(connect, url, 'site-0', newClientToken()).joined).toEqual({ refused: 'unauthorized' });
        expect(await connectPeer(connect, url, 'intruder').joined).toEqual({ refused: 'unauthorized' });
        const good = connectPeer(connect, url, 'site-0', token);
        expect(Object.keys(await good.joined)).toEqual(['welcome']);
        good.channel.disconnect();

        mnist ??= loadBuiltinDataset('mnist');
        const client = new FtlClient({
          serverUrl: url,
          name: 'site-0',
          token: newClientToken(),
          shard: loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 2, index: 0, seed: 3, limit: 100 }, undefined, mnist),
          cacheDir: join(dir, 'cache'),
          log,
          connect,
        });
        await expect(client.run()).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
      } finally {
        await coordinator.close();
        store.close();
      }
    },
  );
});
