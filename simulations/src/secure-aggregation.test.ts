import { join } from 'node:path';
import { type FtlClient, socketIoConnect } from '@ftl/client';
import { type CoordinatorConfig, FederatedRun, type RoundRecord, Store } from '@ftl/coordinator';
import { type ChannelConnector, type ClientChannel, clipDelta, RdpAccountant, updateDelta, type Weights } from '@ftl/shared';
import { ringScale } from '@ftl/shared/secagg';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createCoordinator, makeClient, scratch } from './test-federation.js';

// Secure aggregation end to end: a real coordinator on a free port and real MNIST sites over socket.io,
// each phase a real msgpack frame. The sites' trained weights are seen through the research hook (as
// the site has them); what the coordinator received is seen by listening on its run's entry points.

const SITES = 4;
const LIMIT = 400;

/** The run config of these tests: FedAvg on a linear head, secure aggregation on, the per-update screens off. */
const secureRun = (runId: string, over: Partial<CoordinatorConfig> = {}): Partial<CoordinatorConfig> => ({
  runId,
  rounds: 1,
  minClients: SITES,
  waitTimeoutMs: 60_000,
  roundDeadlineMs: 60_000,
  hidden: [],
  fit: { epochs: 1, batchSize: 16, learningRate: 0.01 },
  trust: { normBound: 0, maxAbsValue: 0, weightCap: 4 },
  secureAggregation: { enabled: true, clipRange: 1, rounding: 'stochastic' },
  ...over,
});

/** A connector whose site closes right after the coordinator acknowledged its `after` message. */
function closingAfter(after: string, close: () => void): ChannelConnector {
  return (url, options) => {
    const channel = socketIoConnect(url, options);
    // Every call passes through to the real channel; only acknowledged sends are watched.
    return {
      get connected() {
        return channel.connected;
      },
      on: (event: never, listener: never) => channel.on(event, listener),
      once: (event, listener) => channel.once(event, listener),
      off: (event, listener) => channel.off(event, listener),
      emit: (event, message) => channel.emit(event, message),
      timeout: (ms) => ({
        emitWithAck: async (event, message) => {
          const ack = await channel.timeout(ms).emitWithAck(event, message);
          if (event === after) setImmediate(close);
          return ack;
        },
      }),
      connect: () => channel.connect(),
      disconnect: () => channel.disconnect(),
      io: channel.io,
    } satisfies ClientChannel;
  };
}

interface Federation {
  records: RoundRecord[];
  /** The global weights after each committed or retried round, in order. */
  globals: Weights[];
  /** Per site, per round's fit: the weights it started from and those it trained. */
  trained: Map<number, Array<{ global: Weights; trained: Weights }>>;
  /** Every answer the coordinator's run took from a site: the event and the decoded payload. */
  received: Array<{ event: string; client: string; raw: unknown }>;
  store: Store;
  /** The run's progress as the operator saw it after each masked input arrived. */
  progress: Array<{ phase: string; received: number; expected: number }>;
  /** The coordinator's Prometheus text and the run's site states, read before it closed. */
  metrics?: string;
  sites?: Array<{ client: string; state: string; message?: string }>;
  error?: unknown;
}

/** Runs the sites to the run's end; the sites in `drop` close once their `after` message is acknowledged (first round only). */
async function federate(
  runId: string,
  over: Partial<CoordinatorConfig>,
  drop: { sites: number[]; after: string } = { sites: [], after: '' },
  site: { dpSeed?: number } = {},
): Promise<Federation> {
  const store = Store.open(':memory:');
  const home = await scratch(runId);
  const received: Federation['received'] = [];
  const progress: Federation['progress'] = [];
  const original = { secure: FederatedRun.prototype.submitSecure, fit: FederatedRun.prototype.submitFit };
  vi.spyOn(FederatedRun.prototype, 'submitSecure').mockImplementation(function (this: FederatedRun, event, client, raw) {
    received.push({ event, client, raw });
    const ack = original.secure.call(this, event, client, raw);
    if (event === 'secagg-masked-input') progress.push(this.progress());
    return ack;
  });
  vi.spyOn(FederatedRun.prototype, 'submitFit').mockImplementation(function (this: FederatedRun, client, raw) {
    received.push({ event: 'fit-result', client, raw });
    return original.fit.call(this, client, raw);
  });
  const coordinator = await createCoordinator(secureRun(runId, over), { store });
  const { url } = await coordinator.listen();
  const trained = new Map<number, Array<{ global: Weights; trained: Weights }>>();
  const clients: FtlClient[] = [];
  for (let index = 0; index < SITES; index++) {
    trained.set(index, []);
    const dropping = drop.sites.includes(index);
    clients.push(
      await makeClient({
        url,
        index,
        clients: SITES,
        limit: LIMIT,
        cacheDir: join(home, `site-${index}`),
        transformUpdate: (t, g) => {
          trained.get(index)!.push({ global: g, trained: t });
          return t;
        },
        ...(dropping ? { connect: closingAfter(drop.after, () => clients[index]!.close()) } : {}),
        ...(site.dpSeed !== undefined ? { dpSeed: site.dpSeed + index } : {}),
      }),
    );
  }
  const ends = clients.map((c) => c.run().catch(() => undefined));
  const records: RoundRecord[] = [];
  const globals: Weights[] = [];
  const out: Federation = { records, globals, trained, received, progress, store };
  try {
    await coordinator.run((record, snapshot) => {
      records.push(record);
      globals.push(snapshot.weights);
    });
  } catch (err) {
    out.error = err;
  } finally {
    out.metrics = await coordinator.server.metrics.text();
    out.sites = coordinator.server.runView(runId)?.sites;
    await coordinator.close();
    for (const c of clients) c.close();
    await Promise.all(ends);
  }
  return out;
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** FedAvg of the sites' trained weights by their training samples, value by value (float64). */
function plainFedAvg(updates: Array<{ global: Weights; trained: Weights; n: number }>): Float64Array {
  const total = updates.reduce((s, u) => s + u.n, 0);
  const out = new Float64Array(updates[0]!.global.values.length);
  for (const u of updates) for (let i = 0; i < out.length; i++) out[i]! += (u.n / total) * u.trained.values[i]!;
  return out;
}

describe('secure aggregation over real sockets', () => {
  test('a round’s aggregate is the plain FedAvg of the same updates within the quantisation error, though one site drops after its masked input; the coordinator never receives an update', async () => {
    const fed = await federate('secagg-sum', {}, { sites: [3], after: 'secagg-masked-input' });
    expect(fed.error).toBeUndefined();
    const [record] = fed.records;
    expect(record).toMatchObject({ round: 1, status: 'aggregated', selected: SITES, accepted: SITES });
    expect(record!.secureAggregation).toEqual({ maskedInputs: SITES, dropouts: 1, threshold: 3, neighbours: 3 });

    // Each site's weight is its training samples, as plain FedAvg weighs it.
    const updates = [...fed.trained.values()].map((runs) => runs[0]!);
    const advertised = fed.received.filter((r) => r.event === 'secagg-advertise').map((r) => (r.raw as { numExamples: number }).numExamples);
    expect(advertised).toHaveLength(SITES);
    const expected = plainFedAvg(updates.map((u, i) => ({ ...u, n: advertised[i]! })));
    const total = advertised.reduce((a, b) => a + b, 0);
    const scale = ringScale({ clipRange: 1, totalWeight: total, sites: SITES });
    const got = fed.globals[0]!.values;
    // Quantisation: at most one unit per site in the weighted sum, divided by the weights' sum; then float32.
    const bound = SITES / scale / total;
    let worst = 0;
    got.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - expected[i]!) - bound - 1e-7 * Math.max(1, Math.abs(expected[i]!)));
    });
    expect(worst).toBeLessThanOrEqual(0);
    // And the round did move the model: the aggregate is not the starting point.
    expect(got.some((v, i) => Math.abs(v - updates[0]!.global.values[i]!) > 1e-4)).toBe(true);

    // What the coordinator received: no fit-result, and per site exactly one message of each phase …
    expect(fed.received.filter((r) => r.event === 'fit-result')).toEqual([]);
    const byEvent = (e: string) => fed.received.filter((r) => r.event === e);
    expect(byEvent('secagg-masked-input')).toHaveLength(SITES);
    expect(byEvent('secagg-unmask-shares')).toHaveLength(SITES - 1);
    // … and no message holds a site's trained weights or its change from the global model, as float32 bytes.
    for (const [index, runs] of fed.trained) {
      const { global, trained } = runs[0]!;
      const change = Float32Array.from(trained.values, (v, i) => v - global.values[i]!);
      for (const values of [trained.values, change]) {
        const needle = Buffer.from(values.buffer, values.byteOffset + 64, 64);
        for (const r of fed.received)
          expect(
            binaries(r.raw).some((b) => Buffer.from(b).includes(needle)),
            `site ${index} in ${r.event}`,
          ).toBe(false);
      }
    }
    // A masked input is its site's quantised change under masks. In the clear, a change far below the
    // clip range is a small two's-complement integer, top byte 0x00 or 0xff; masked, the words are uniform.
    for (const r of byEvent('secagg-masked-input')) {
      const masked = (r.raw as { masked: Uint8Array }).masked;
      expect(masked.byteLength).toBe(got.length * 4);
      let small = 0;
      for (let i = 3; i < masked.byteLength; i += 4) if (masked[i] === 0x00 || masked[i] === 0xff) small++;
      expect(small / got.length).toBeLessThan(0.05);
    }

    // What the coordinator stored: the round, its checkpoint (the aggregate), and the round's summary; no site's update.
    const rounds = fed.store.listRounds('secagg-sum');
    expect(rounds).toHaveLength(1);
    expect(rounds[0]!.record.secureAggregation).toEqual(record!.secureAggregation);
    expect(Array.from(fed.store.latestCheckpoint('secagg-sum')!.values)).toEqual(Array.from(got));
    const events = fed.store.listEvents('secagg-sum').filter((e) => e.type === 'secure-aggregation');
    expect(events.map((e) => e.data)).toEqual([
      expect.objectContaining({ round: 1, sites: SITES, maskedInputs: SITES, dropouts: 1, threshold: 3, answered: [4, 4, 4, 3] }),
    ]);

    // The operator sees the masked inputs as the round's updates: in the run's progress as they come in,
    // counted in /metrics and in each site's state.
    expect(fed.progress.map((p) => [p.phase, p.received, p.expected])).toEqual(Array.from({ length: SITES }, (_, i) => ['fit', i + 1, SITES]));
    expect(fed.metrics).toMatch(new RegExp(`ftl_updates_accepted_total\\{run="secagg-sum"\\} ${SITES}\\b`));
    const states = new Map(fed.sites?.map((x) => [x.client, x]));
    for (const index of [0, 1, 2])
      expect(states.get(`client-${index}`)?.message).toMatch(/masked update of round 1 was accepted|evaluation of round 1 was accepted/);
  }, 240_000);

  test('more than n − t sites dropping after their masked inputs fails the round cleanly: no aggregate, the reason stored, and the run goes on from the previous model', async () => {
    const fed = await federate('secagg-fail', { rounds: 2, quorumRetries: 1 }, { sites: [2, 3], after: 'secagg-masked-input' });
    expect(fed.error).toBeUndefined();
    const [failed, retried, second] = fed.records;
    const reason = 'secure aggregation: 2 of 4 sites answered the unmasking, 3 were needed';
    expect(failed).toMatchObject({ round: 1, status: 'no-quorum', accepted: 0, modelVersion: 0 });
    expect(failed!.secureAggregation).toEqual({ maskedInputs: 0, dropouts: 2, threshold: 3, neighbours: 3, failure: reason });
    // The failed attempt kept the model; the round played again with the two sites left, whose t is 2 of 2.
    expect(fed.globals[0]!.values).toEqual(fed.trained.get(0)![0]!.global.values);
    expect(retried).toMatchObject({ round: 1, status: 'aggregated', selected: 2, accepted: 2, modelVersion: 1 });
    expect(retried!.secureAggregation).toMatchObject({ maskedInputs: 2, dropouts: 0, threshold: 2, neighbours: 1 });
    expect(second).toMatchObject({ round: 2, status: 'aggregated', accepted: 2 });
    const events = fed.store.listEvents('secagg-fail');
    expect(events.filter((e) => e.type === 'secure-aggregation').map((e) => (e.data as { failure?: string }).failure)).toEqual([
      reason,
      undefined,
      undefined,
    ]);
    expect(events.filter((e) => e.type === 'round-retry')).toHaveLength(1);
  }, 240_000);

  test('with client-level DP each site adds its share of the central noise before masking: the unmasked mean carries noise of the whole z·S, and the run is charged as without secure aggregation', async () => {
    const z = 1;
    const S = 0.05;
    const privacy = { mode: 'client', noiseMultiplier: z, clipNorm: S, sampling: 'poisson', delta: 1e-5 } as CoordinatorConfig['privacy'];
    const fed = await federate('secagg-dp', { privacy }, { sites: [], after: '' }, { dpSeed: 21 });
    expect(fed.error).toBeUndefined();
    const [record] = fed.records;
    expect(record).toMatchObject({ status: 'aggregated', accepted: SITES });
    const t = record!.secureAggregation!.threshold;
    expect(t).toBe(3);
    // The aggregate minus the mean of the clipped changes is the sites' noise, summed and divided by m = 4.
    const runs = [...fed.trained.values()].map((r) => r[0]!);
    const global = runs[0]!.global.values;
    const clipped = runs.map((r) => clipDelta(updateDelta(r.trained.values, global), S).delta);
    const noise = fed.globals[0]!.values.map((v, i) => (v - global[i]! - clipped.reduce((s, c) => s + c[i]!, 0) / SITES) * SITES);
    const rms = Math.sqrt(noise.reduce((s, v) => s + v * v, 0) / noise.length);
    // Four shares of N(0, (z·S)²/t): at least the whole noise z·S, as any t of them would give.
    const expected = z * S * Math.sqrt(SITES / t);
    expect(rms).toBeGreaterThan(0.95 * expected);
    expect(rms).toBeLessThan(1.05 * expected);
    const epsilon = new RdpAccountant().step({ noiseMultiplier: z, sampleRate: 1, steps: 1 }).epsilon(1e-5).epsilon;
    expect(record!.epsilon).toBe(epsilon);
    const event = fed.store.listEvents('secagg-dp').find((e) => e.type === 'round-privacy')!.data as {
      client: { epsilon: number; updates: number; selected: number };
    };
    expect(event.client).toMatchObject({ epsilon, updates: SITES, selected: SITES });
  }, 240_000);
});

/** Every binary value inside a decoded message. */
function binaries(v: unknown): Uint8Array[] {
  if (v instanceof Uint8Array) return [v];
  if (Array.isArray(v)) return v.flatMap(binaries);
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(binaries);
  return [];
}
