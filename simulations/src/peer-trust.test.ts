import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Store, type CoordinatorConfig, type RoundRecord, type RunSummary, type StoredEvent } from '@ftl/coordinator';
import { createLogger, initBackend, type ChannelStats } from '@ftl/shared';
import { afterAll, describe, expect, test } from 'vitest';
import { holdoutAccuracy } from './holdout.js';
import {
  echoGlobal,
  hugeSumStats,
  HostileClient,
  perfectFirstRound,
  plausibleEvaluation,
  plausibleStats,
  scaledGlobal,
  type HostileOptions,
} from './hostile-client.js';
import { createCoordinator, makeClient, scratch } from './test-federation.js';

// Two honest sites on 300 MNIST samples each, and one hostile site named "hostile" (it sorts after
// "client-0" and "client-1", so the honest sites keep the training seeds they have without it).
const HONEST = 2;
const LIMIT = 600;
const HOSTILE = 'hostile';
const cacheDir = scratch('peer-trust-cache');
afterAll(async () => rm(await cacheDir, { recursive: true, force: true }));

interface Outcome {
  summary?: RunSummary;
  error?: Error;
  rows: RoundRecord[];
  events: StoredEvent[];
  hostile?: HostileClient;
  /** Held-out accuracy of the exported model (NaN when nothing was exported). */
  heldOut: number;
}

/** A real coordinator (with a store), the honest sites and, when given, the hostile site, run to the end. */
async function federation(o: {
  runId: string;
  hostile?: Omit<HostileOptions, 'serverUrl' | 'name'>;
  minClients: number;
  over?: Partial<CoordinatorConfig>;
}): Promise<Outcome> {
  await initBackend();
  const dir = await scratch(`peer-trust-${o.runId}`);
  const store = Store.open(join(dir, 'c.db'));
  const exportDir = join(dir, 'model');
  const coordinator = await createCoordinator(
    {
      runId: o.runId,
      rounds: 2,
      minClients: o.minClients,
      seed: 3,
      exportDir,
      fit: { epochs: 2, batchSize: 32, learningRate: 0.002 },
      waitTimeoutMs: 60_000,
      roundDeadlineMs: 30_000,
      ...o.over,
    },
    { store, log: createLogger('coordinator', { level: 'error' }) },
  );
  const { url } = await coordinator.listen();
  const cache = await cacheDir;
  const honest = await Promise.all(
    Array.from({ length: HONEST }, (_, index) =>
      makeClient({ url, index, clients: HONEST, limit: LIMIT, cacheDir: join(cache, `c${index}`), log: createLogger('client', { level: 'error' }) }),
    ),
  );
  const hostile = o.hostile ? new HostileClient({ serverUrl: url, name: HOSTILE, ...o.hostile }) : undefined;
  await hostile?.connect();
  const out: Outcome = { rows: [], events: [], heldOut: NaN, ...(hostile ? { hostile } : {}) };
  // As runToEnd, but a failed run is an outcome to assert on, and the sites it leaves failing are awaited too.
  const ends = Promise.allSettled(honest.map((c) => c.run()));
  try {
    out.summary = await coordinator.run((r) => out.rows.push(r));
    out.heldOut = (await holdoutAccuracy(exportDir)).accuracy;
  } catch (err) {
    out.error = err as Error;
  } finally {
    await ends;
    await coordinator.close();
  }
  await hostile?.ended;
  out.events = store.listEvents(o.runId);
  store.close();
  await rm(dir, { recursive: true, force: true });
  return out;
}

/** The trust policy's records of what it left out of the run for `client`. */
function exclusions(events: StoredEvent[], type: 'update-excluded' | 'evaluation-excluded' | 'statistics-excluded', client = HOSTILE) {
  return events
    .filter((e) => e.type === type)
    .map((e) => e.data as { round?: number; client: string; reason: string; message: string })
    .filter((d) => d.client === client);
}

/** The RoundRecord's count of updates left out of the aggregate. */
const excludedIn = (r: RoundRecord): unknown => (r as unknown as Record<string, unknown>)['excluded'];

const acksOf = (h: HostileClient | undefined, event: string) => (h?.acks ?? []).filter((a) => a.event === event);

// The honest sites alone, same data, seeds and settings: what one hostile site must not move far.
let honestOnly: Promise<Outcome> | undefined;
const baseline = () => (honestOnly ??= federation({ runId: 'honest-only', minClients: HONEST }));

describe('one hostile site cannot poison the model', () => {
  test.each([
    // Declares the largest training set the defaults allow and claims all of it.
    [
      '−10 × the global model with a claim of 1,000,000 samples',
      'poison-flip',
      { declare: { numTrain: 1_000_000, numVal: 150 }, fit: scaledGlobal(-10, 1_000_000) },
    ],
    ['1e30 × the global model with a claim of 1 sample', 'poison-huge', { declare: { numTrain: 300, numVal: 150 }, fit: scaledGlobal(1e30, 1) }],
  ])('%s: excluded every round with the site and round recorded; the model stays close to the honest one', async (_, runId, hostile) => {
    const [attacked, clean] = [await federation({ runId, minClients: HONEST + 1, hostile }), await baseline()];
    expect(attacked.error?.message).toBeUndefined();
    expect(attacked.summary!.reason).toBe('completed');
    expect(attacked.summary!.weights.values.every(Number.isFinite)).toBe(true);
    // Sent every round (it is selected like any site), excluded every round.
    expect(acksOf(attacked.hostile, 'fit-result').map((a) => a.round)).toEqual([1, 2]);
    const excluded = exclusions(attacked.events, 'update-excluded');
    expect(excluded.map((e) => e.round)).toEqual([1, 2]);
    for (const e of excluded) expect(e.reason.length * e.message.length).toBeGreaterThan(0);
    expect(attacked.rows.map((r) => [r.status, excludedIn(r)])).toEqual([
      ['aggregated', 1],
      ['aggregated', 1],
    ]);
    // Without its update each round averages the honest sites' alone: the model the honest sites train.
    expect(clean.heldOut).toBeGreaterThan(0.7);
    expect(Math.abs(attacked.heldOut - clean.heldOut)).toBeLessThan(0.02);
  });

  test('a sample count above what the site declared at ready is refused as bad-sample-count, in training and evaluation', async () => {
    const r = await federation({
      runId: 'over-claim',
      minClients: HONEST + 1,
      over: { rounds: 1 },
      hostile: { declare: { numTrain: 100, numVal: 50 }, fit: echoGlobal(5000), evaluate: plausibleEvaluation(5000), failAfterRefusal: true },
    });
    expect(r.error?.message).toBeUndefined();
    expect(acksOf(r.hostile, 'fit-result').map((a) => a.ack)).toEqual([expect.objectContaining({ accepted: false, reason: 'bad-sample-count' })]);
    expect(acksOf(r.hostile, 'evaluate-result').map((a) => a.ack)).toEqual([
      expect.objectContaining({ accepted: false, reason: 'bad-sample-count' }),
    ]);
    expect(r.rows.map((x) => [x.accepted, x.rejected, x.failed, x.evalClients])).toEqual([[HONEST, 1, 1, HONEST]]);
  });
});

describe('one hostile site cannot steer evaluation or early stopping', () => {
  test("accuracy 7 and loss −1e9 are refused; every round's validation metrics stay in range", async () => {
    const lies = [
      { accuracy: 7, loss: 0.3 },
      { accuracy: 0.5, loss: -1e9 },
    ];
    const r = await federation({
      runId: 'out-of-range',
      minClients: HONEST + 1,
      hostile: { declare: { numTrain: 300, numVal: 150 }, evaluate: (round) => ({ numExamples: 150, ...lies[round - 1]! }), failAfterRefusal: true },
    });
    expect(r.error?.message).toBeUndefined();
    expect(acksOf(r.hostile, 'evaluate-result').map((a) => [a.round, (a.ack as { accepted?: boolean }).accepted])).toEqual([
      [1, false],
      [2, false],
    ]);
    // Each refused evaluation is recorded with its round and reason, as runs status lists them.
    expect(exclusions(r.events, 'evaluation-excluded').map((e) => [e.round, e.client, e.reason])).toEqual([
      [1, 'hostile', 'malformed'],
      [2, 'hostile', 'malformed'],
    ]);
    for (const x of r.rows) {
      expect(x.evalClients).toBe(HONEST);
      expect(x.valAccuracy).toBeGreaterThanOrEqual(0);
      expect(x.valAccuracy).toBeLessThanOrEqual(1);
      expect(x.valLoss).toBeGreaterThanOrEqual(0);
    }
  });

  test('with patience 1 a site reporting a perfect round 1 and a poor head after it does not decide which round is best', async () => {
    // The hostile site trains nothing (it reports a failure), so the global models are the honest
    // sites' alone, as in the reference run; only its evaluations lie, with the largest count it declared.
    const over = { rounds: 3, patience: 1 };
    const reference = await federation({ runId: 'stop-reference', minClients: HONEST, over });
    const r = await federation({
      runId: 'stop-hijack',
      minClients: HONEST + 1,
      over,
      hostile: { declare: { numTrain: 300, numVal: 1_000_000 }, fit: () => 'fail', evaluate: perfectFirstRound(1_000_000) },
    });
    expect(reference.summary!.bestRound).toBeGreaterThan(1); // the honest sites improve after round 1
    expect(r.error?.message).toBeUndefined();
    expect(acksOf(r.hostile, 'evaluate-result').length).toBe(r.rows.length); // its lies were sent every round
    expect(r.summary!.bestRound).toBe(reference.summary!.bestRound);
    expect(r.rows.length).toBe(reference.rows.length);
    expect(Math.abs(r.heldOut - reference.heldOut)).toBeLessThan(0.005);
  });
});

describe('one hostile site cannot break federated normalisation', () => {
  test.each<[string, string, (n: number) => ChannelStats]>([
    ['sums of 1e300', 'stats-huge', (n) => hugeSumStats(n)],
    ['two channels where the images have one', 'stats-channels', (n) => plausibleStats(n, 2)],
  ])("statistics with %s are refused at ready and the run normalises with the honest sites' statistics", async (_, runId, stats) => {
    const r = await federation({
      runId,
      minClients: HONEST,
      over: { rounds: 1, normalization: 'standard' },
      hostile: { declare: { numTrain: 300, numVal: 150, stats: stats(300 * 784) } },
    });
    expect(acksOf(r.hostile, 'ready').map((a) => a.ack)).toEqual([expect.objectContaining({ accepted: false, reason: 'bad-statistics' })]);
    expect(exclusions(r.events, 'statistics-excluded')).toEqual([expect.objectContaining({ client: HOSTILE })]);
    expect(r.error?.message).toBeUndefined();
    const event = r.events.find((e) => e.type === 'normalization')!.data as { clients: string[]; shift: number[]; scale: number[] };
    expect(event.clients).toEqual(['client-0', 'client-1']);
    // MNIST pixels are in [0, 1]: a mean of about 0.13 and a standard deviation of about 0.3.
    expect(event.shift).toHaveLength(1);
    expect(event.shift[0]).toBeGreaterThan(0.05);
    expect(event.shift[0]).toBeLessThan(0.25);
    expect(event.scale[0]).toBeGreaterThan(0.2);
    expect(event.scale[0]).toBeLessThan(0.5);
    expect(r.heldOut).toBeGreaterThan(0.6);
  });
});

describe('a site cannot hide from the operator or from revocation', () => {
  // socket.io's reserved names, and `error`, which every EventEmitter treats specially.
  test.each(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener', 'error'])(
    'after emitting the reserved name "%s" the operator view shows the site as it is, and revoking it closes every socket it has',
    async (reserved) => {
      await initBackend();
      const dir = await scratch('reserved');
      const store = Store.open(join(dir, 'c.db'));
      const coordinator = await createCoordinator(
        { runId: 'reserved', minClients: 5, requireAuth: true },
        { store, log: createLogger('coordinator', { level: 'error' }) },
      );
      try {
        const { url } = await coordinator.listen();
        const { token } = coordinator.server.addClient(HOSTILE);
        const site = () => new HostileClient({ serverUrl: url, name: HOSTILE, token, declare: { numTrain: 10, numVal: 10 } });
        const view = () => coordinator.server.clientViews().find((v) => v.name === HOSTILE)!;
        const ready = (h: HostileClient) => h.emitWithAck('ready', { protocol: 1, runId: 'reserved', numTrain: 10, numVal: 10 });

        const first = site();
        await first.connect();
        expect(await first.readyAcknowledged()).toEqual({ accepted: true });
        first.emitRaw(reserved, 'x');
        // Packets are handled in order: once the next one is answered (or the connection has closed
        // instead), the coordinator has dealt with the reserved one.
        const probe = await ready(first);
        if (probe === 'no-ack') {
          expect(first.connected).toBe(false); // the coordinator closed the connection: the view says so
          expect(view().connected).toBe(false);
        } else {
          expect(first.connected).toBe(true);
          expect(view().connected).toBe(true);
        }

        // The same site connects a second socket, then the operator revokes it.
        const second = site();
        await second.connect();
        expect(await second.readyAcknowledged()).toEqual({ accepted: true });
        coordinator.server.revokeClient(HOSTILE);
        expect(await ready(second)).toBe('no-ack');
        expect(second.goodbyes.map((g) => g.reason)).toEqual(['revoked']);
        expect(await ready(first)).toBe('no-ack'); // no socket of the site is still served
        await Promise.all([first.ended, second.ended]);
        expect([first.connected, second.connected]).toEqual([false, false]);
        expect(view()).toMatchObject({ connected: false, revoked: true });
        await expect(site().connect()).rejects.toMatchObject({ data: { reason: 'unauthorized' } });
      } finally {
        await coordinator.close();
        store.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
