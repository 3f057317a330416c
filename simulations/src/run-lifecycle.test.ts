import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { Coordinator, CoordinatorServer, defaultCoordinatorConfig, Store, type CoordinatorConfig } from '@ftl/coordinator';
import { createLogger, createMsgpackParser, initBackend, parsePartition, parseStrategy, parseWelcome, PROTOCOL_VERSION } from '@ftl/shared';
import { afterEach, describe, expect, test } from 'vitest';
import { echoGlobal, HostileClient, plausibleStats } from './hostile-client.js';
import { simulate } from './simulate.js';
import { scratch, TEST_RUN } from './test-federation.js';

// Scripted sites (no training) make each round's outcome exact: what is committed, exported or kept
// depends only on the coordinator's lifecycle, which is what these tests are about.

const log = createLogger('coordinator', { level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(over: Partial<CoordinatorConfig>, store?: Store): Promise<{ coordinator: Coordinator; url: string }> {
  await initBackend();
  const config: CoordinatorConfig = {
    ...defaultCoordinatorConfig(),
    ...structuredClone(TEST_RUN),
    port: 0,
    minClients: 2,
    waitTimeoutMs: 60_000,
    roundDeadlineMs: 60_000,
    rounds: 2,
    exportDir: undefined,
    ...over,
  };
  const coordinator = await Coordinator.create(config, log, store);
  const { url } = await coordinator.listen();
  cleanups.push(() => coordinator.close());
  return { coordinator, url };
}

/** A site that sends the global weights back (a valid update that changes nothing). */
async function echoSite(url: string, name: string, fail?: (round: number) => boolean): Promise<HostileClient> {
  const echo = echoGlobal(10);
  const site = new HostileClient({
    serverUrl: url,
    name,
    declare: { numTrain: 10, numVal: 10 },
    fit: (c) => (fail?.(c.round) ? 'fail' : echo(c)),
  });
  await site.connect();
  cleanups.push(() => site.close());
  return site;
}

/** A site that reports ready and then never answers a round. */
function silentSite(url: string, name: string): void {
  const socket = io(url, {
    parser: createMsgpackParser(),
    auth: { protocol: PROTOCOL_VERSION, name },
    transports: ['websocket'],
    reconnection: false,
  });
  socket.on('welcome', (raw: unknown) => {
    const { runId } = parseWelcome(raw);
    socket.emit('ready', { protocol: PROTOCOL_VERSION, runId, numTrain: 10, numVal: 10 });
  });
  cleanups.push(() => socket.disconnect());
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 10));
}

const exportedRun = (dir: string) => JSON.parse(readFileSync(join(dir, 'ftl-model.json'), 'utf8')) as { runId: string; modelVersion: number };

describe('run lifecycle', () => {
  test('a shutdown mid-round commits nothing of it; the next start runs that round in full, every round once', async () => {
    const dir = await scratch('interrupt');
    const store = Store.open(join(dir, 'c.db'));
    cleanups.push(() => store.close());
    const first = await start({ runId: 'interrupted', exportDir: join(dir, 'model') }, store);
    const answering = await echoSite(first.url, 'site-a');
    silentSite(first.url, 'site-b');
    const summary = first.coordinator.run();
    await until(() => answering.acks.some((a) => a.event === 'fit-result'));
    expect(answering.acks.find((a) => a.event === 'fit-result')?.ack).toEqual({ accepted: true });
    await first.coordinator.close();
    expect((await summary).reason).toBe('paused');
    expect(store.listRounds('interrupted')).toEqual([]);
    expect(store.getRun('interrupted')?.status).toBe('running');
    expect(store.listEvents('interrupted').map((e) => e.type)).toContain('run-interrupted');
    expect(existsSync(join(dir, 'model'))).toBe(false);

    const second = await start({ runId: 'interrupted', exportDir: join(dir, 'model') }, store);
    await echoSite(second.url, 'site-a');
    await echoSite(second.url, 'site-b');
    const done = await second.coordinator.run();
    expect(done.reason).toBe('completed');
    expect(store.listRounds('interrupted').map((r) => [r.round, r.record.accepted])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    expect(exportedRun(join(dir, 'model'))).toMatchObject({ runId: 'interrupted', modelVersion: 2 });
  });

  test('stopping a run before any round trained leaves the model already in the export folder untouched', async () => {
    const dir = await scratch('stop-early');
    const out = join(dir, 'model');
    const trained = await start({ runId: 'trained', rounds: 1, exportDir: out });
    await echoSite(trained.url, 'site-a');
    await echoSite(trained.url, 'site-b');
    expect((await trained.coordinator.run()).reason).toBe('completed');
    await trained.coordinator.close();
    expect(exportedRun(out)).toMatchObject({ runId: 'trained', modelVersion: 1 });

    const waiting = await start({ runId: 'never-trained', exportDir: out });
    await echoSite(waiting.url, 'site-a'); // one of the two needed: the run waits
    const summary = waiting.coordinator.run();
    await until(() => waiting.coordinator.readyClients().length === 1);
    waiting.coordinator.stop(); // what Ctrl-C does in one-run mode
    const stopped = await summary;
    expect(stopped).toMatchObject({ reason: 'stopped', rounds: [] });
    expect(stopped.exportDir).toBeUndefined();
    expect(exportedRun(out)).toMatchObject({ runId: 'trained', modelVersion: 1 });
  });

  test('a run that fails after a good round still exports that round’s model, as its message says', async () => {
    const dir = await scratch('fail-export');
    const out = join(dir, 'model');
    const { coordinator, url } = await start({ runId: 'fails', rounds: 3, minFitClients: 2, quorumRetries: 0, exportDir: out });
    await echoSite(url, 'site-a');
    await echoSite(url, 'site-b', (round) => round === 2);
    await expect(coordinator.run()).rejects.toThrow(/round 2 got 1 accepted updates.*global model of round 1/);
    expect(exportedRun(out)).toMatchObject({ runId: 'fails', modelVersion: 1 });
  });

  test('Krum with f = 1 keeps the previous model when a round has 3 updates, and the run completes', async () => {
    const strategy = parseStrategy('krum', 'f=1');
    const { coordinator, url } = await start({ runId: 'krum', rounds: 2, minClients: 4, strategy });
    for (const name of ['a', 'b', 'c']) await echoSite(url, `site-${name}`);
    await echoSite(url, 'site-d', (round) => round === 2); // drops out of round 2
    const rows: Array<{ round: number; status: string; accepted: number }> = [];
    const summary = await coordinator.run((r) => rows.push(r));
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.round, r.status, r.accepted])).toEqual([
      [1, 'aggregated', 4],
      [2, 'kept', 3],
    ]);
  });

  test('a run whose minClients is below its strategy’s minimum is refused when it is created', async () => {
    await initBackend();
    const config = { ...defaultCoordinatorConfig(), port: 0, minClients: 2, strategy: parseStrategy('krum', 'f=1') };
    await expect(CoordinatorServer.create(config, log)).rejects.toThrow(
      'strategy krum needs at least 4 updates in a round to aggregate, but minClients is 2, so a round could start with too few; ' +
        "raise minClients to 4 or more, or lower the strategy's f",
    );
  });

  test('without tokens the coordinator listens only on loopback unless the operator opts out in so many words', async () => {
    await initBackend();
    const open = { ...defaultCoordinatorConfig(), host: '0.0.0.0', port: 0 };
    await expect(CoordinatorServer.create(open, log)).rejects.toThrow(
      'clients without tokens are accepted only on a loopback address, not on --host 0.0.0.0; register sites with "clients add" ' +
        'and give --require-auth, or pass --insecure-open to let anyone who reaches the port join',
    );
    const lines: string[] = [];
    const loud = createLogger('coordinator', { level: 'warn', write: (l) => lines.push(l) });
    await CoordinatorServer.create({ ...open, insecureOpen: true }, loud);
    expect(lines.join('\n')).toMatch(/warn auth-disabled-on-network host=0\.0\.0\.0 detail="INSECURE: anyone/);
  });

  test('a site whose messages keep being refused is told why and disconnected; the run goes on with the others', async () => {
    const { coordinator, url } = await start({ runId: 'flooded', rounds: 1, minClients: 3, roundDeadlineMs: 3000 });
    const flooder = await echoSite(url, 'site-a');
    await echoSite(url, 'site-b');
    silentSite(url, 'site-c'); // keeps the round open (until its deadline) while site-a floods
    const summary = coordinator.run();
    await until(() => flooder.acks.some((a) => a.event === 'fit-result'));
    const refusals: unknown[] = [];
    for (let i = 0; i < 40 && flooder.connected; i++) refusals.push(await flooder.emitWithAck('fit-result', { garbage: i }));
    expect(flooder.goodbyes.map((g) => g.reason)).toEqual(['misbehaving']);
    // Twenty refusals in a row, each answered with its reason, then the goodbye: nothing after it is answered.
    expect(refusals.filter((a) => (a as { accepted?: boolean }).accepted === false)).toHaveLength(20);
    expect(refusals.slice(20).every((a) => a === 'no-ack')).toBe(true);
    await flooder.ended;
    expect(flooder.connected).toBe(false);
    expect((await summary).rounds).toHaveLength(1);
  });

  test('a connection refused at the handshake is closed by the coordinator, not left open until a timeout', async () => {
    const { url } = await start({ runId: 'refusing' });
    const socket = io(url, {
      parser: createMsgpackParser(),
      auth: { protocol: 999, name: 'old-site' },
      transports: ['websocket'],
      reconnection: false,
    });
    cleanups.push(() => socket.disconnect());
    const refusal = await new Promise<Error & { data?: { reason?: string } }>((resolve) => socket.once('connect_error', resolve));
    expect(refusal.data?.reason).toBe('protocol-mismatch');
    // The transport closes from the server's side (this client never disconnects it).
    await new Promise<void>((resolve) => (socket.io.engine.readyState === 'closed' ? resolve() : socket.io.engine.once('close', () => resolve())));
    expect(socket.io.engine.readyState).toBe('closed');
  });

  test('statistics outside the run’s declared input range leave that site out; the others’ normalisation goes on', async () => {
    const dir = await scratch('range');
    const store = Store.open(join(dir, 'c.db'));
    cleanups.push(() => store.close());
    const { coordinator, url } = await start({ runId: 'ranged', rounds: 1, normalization: 'standard', inputRange: [0, 1] }, store);
    const site = (name: string, stats: ReturnType<typeof plausibleStats>) => {
      const h = new HostileClient({ serverUrl: url, name, declare: { numTrain: 10, numVal: 10, stats } });
      cleanups.push(() => h.close());
      return h.connect().then(() => h);
    };
    const raw = { ...plausibleStats(784), max: [255], sum: [0.13 * 255 * 784], sumSquares: [0.2 * 255 * 255 * 784] };
    const unscaled = await site('site-raw', raw); // 0–255 pixels in a run declared [0, 1]
    await site('site-a', plausibleStats(784));
    await site('site-b', plausibleStats(784));
    expect(await unscaled.readyAcknowledged()).toMatchObject({ accepted: false, reason: 'bad-statistics', message: expect.stringMatching(/255/) });
    const summary = await coordinator.run();
    expect(summary.reason).toBe('completed');
    const norm = store.listEvents('ranged').find((e) => e.type === 'normalization')!.data as { shift: number[]; clients: string[] };
    expect(norm.clients).toEqual(['site-a', 'site-b']);
    expect(norm.shift[0]).toBeCloseTo(0.13, 6);
    expect(
      store
        .listEvents('ranged')
        .filter((e) => e.type === 'statistics-excluded')
        .map((e) => (e.data as { client: string }).client),
    ).toEqual(['site-raw']);
  });

  test('a real site whose update is refused says it will not answer again, so the round closes without waiting for it', async () => {
    const lines: string[] = [];
    const capture = createLogger('simulation', { level: 'warn', write: (l) => lines.push(l) });
    // Site 0 sends NaN weights: refused as non-finite. The round's deadline is minutes away: the run ends
    // long before it only because the site reports its failure.
    const r = await simulate({
      ...TEST_RUN,
      clients: 2,
      partition: parsePartition('iid'),
      rounds: 1,
      epochs: 1,
      learningRate: 0.002,
      batchSize: 32,
      seed: 2,
      limit: 300,
      strategy: parseStrategy('fedavg'),
      attackers: 1,
      attack: (w) => ({ specs: w.specs, values: w.values.map(() => NaN) }),
      log: capture,
    });
    expect(r.summary.rounds.map((x) => [x.accepted, x.rejected, x.failed])).toEqual([[1, 1, 1]]);
    expect(lines.some((l) => / warn client-missed-round .*client=site-0 .*refused this site's update \(non-finite\)/.test(l))).toBe(true);
  });
});
