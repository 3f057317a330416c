import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Coordinator, SMALL_BACKBONE_DIR, defaultCoordinatorConfig, loadServedBackbone, Store, type CoordinatorConfig } from '@ftl/coordinator';
import {
  alignShardToRun,
  CLASS_SUMS_TENSOR,
  createLogger,
  encodeWeights,
  normalizeImages,
  parseAck,
  type Normalization,
  PROTOCOL_VERSION,
  type Ack,
  type ClassSumsInstruction,
  extractFeatures,
  discriminantHead,
  withinClassScatter,
  initBackend,
  loadBuiltinDataset,
  loadClientShard,
  DEFAULT_FINE_TUNING,
  type FineTuning,
  type Weights,
} from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectRawPeer } from './raw-peer.js';
import { createCoordinator, makeClient, runToEnd, scratch, tensorValues, type RunOutcome } from './test-federation.js';

// Three sites on 450 MNIST images (150 each, of which the sites keep a part for validation): far too
// few to train a conv net, enough for class means of a pretrained backbone's features.
const SITES = 3;
const LIMIT = 450;
// A learning rate at which round 1 changes the head by less than float32 can show: its evaluation is
// the evaluation of the head the run started from.
const NO_TRAINING = { epochs: 1, batchSize: 32, learningRate: 1e-12 };

const fineTuning = (over: Partial<FineTuning>): FineTuning => ({ ...DEFAULT_FINE_TUNING, ...over });
const dirs: string[] = [];

/** A real coordinator on `store` and three real clients on tiny MNIST shards, run to its end; the coordinator's log lines are kept. */
async function federate(
  over: Partial<CoordinatorConfig>,
  store: Store,
  onCoordinator?: (c: Coordinator) => void,
  beforeSites?: (url: string) => Promise<void>,
): Promise<RunOutcome & { log: string[] }> {
  await initBackend();
  const dir = await scratch('class-means');
  dirs.push(dir);
  const log: string[] = [];
  const coordinator = await createCoordinator(
    { runId: 'ncm', minClients: SITES, waitTimeoutMs: 60_000, roundDeadlineMs: 120_000, rounds: 1, hidden: [], fit: NO_TRAINING, ...over },
    { store, log: createLogger('coordinator', { level: 'info', write: (l) => log.push(l) }) },
  );
  onCoordinator?.(coordinator);
  const { url } = await coordinator.listen();
  await beforeSites?.(url);
  const clients = await Promise.all(
    Array.from({ length: SITES }, (_, index) => makeClient({ url, index, clients: SITES, limit: LIMIT, cacheDir: join(dir, `cache-${index}`) })),
  );
  return { ...(await runToEnd(coordinator, clients)), log };
}

/** The recorded head-init events of a run. */
const headInits = (store: Store, runId = 'ncm') => store.listEvents(runId).filter((e) => e.type === 'head-init');

/** Per class, the mean of the sites' training features at the cut, computed here from the same shards through the real extractor. */
async function pooledMeans(
  classes: string[],
  normalization?: Normalization,
): Promise<{ means: Float64Array[]; counts: number[]; featureDim: number }> {
  await initBackend();
  const served = await loadServedBackbone(SMALL_BACKBONE_DIR);
  const fx = served.extractor;
  const mnist = loadBuiltinDataset('mnist');
  const d = fx.featureDim;
  const sums = classes.map(() => new Float64Array(d));
  const counts = classes.map(() => 0);
  for (let index = 0; index < SITES; index++) {
    const shard = loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: SITES, index, seed: 5, limit: LIMIT }, undefined, mnist);
    const aligned = alignShardToRun(shard, classes).train;
    const train = normalization ? { ...aligned, images: normalizeImages(aligned.images, normalization.shift.length, normalization) } : aligned;
    const features = await extractFeatures(fx, train);
    for (let i = 0; i < train.n; i++) {
      const c = train.labels[i]!;
      counts[c]!++;
      for (let j = 0; j < d; j++) sums[c]![j]! += features[i * d + j]!;
    }
  }
  return { means: sums.map((s, c) => s.map((v) => v / counts[c]!)), counts, featureDim: d };
}

/** Kernel column c is 2α·μ_c and bias c is −α·‖μ_c‖²: α = −‖column‖² / (4·bias), then μ_c = column / 2α, which must be the expected mean. */
function expectHeadOfMeans(weights: Weights, expected: { means: Float64Array[]; featureDim: number }): void {
  const kernel = tensorValues(weights, 'head_output/kernel');
  const bias = tensorValues(weights, 'head_output/bias');
  const k = expected.means.length;
  for (let c = 0; c < k; c++) {
    const column = Array.from({ length: expected.featureDim }, (_, j) => kernel[j * k + c]!);
    const alpha = -column.reduce((s, v) => s + v * v, 0) / (4 * bias[c]!);
    const mean = expected.means[c]!;
    const scale = Math.max(...mean.map(Math.abs));
    column.forEach((v, j) => expect(Math.abs(v / (2 * alpha) - mean[j]!)).toBeLessThan(1e-4 * scale));
  }
}

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('headInit class-means (FedNCM) over real sockets', () => {
  let ncm: RunOutcome & { log: string[] };
  let random: RunOutcome;
  let store: Store;

  beforeAll(async () => {
    store = Store.open(':memory:');
    ncm = await federate({ headInit: 'class-means' }, store);
    random = await federate({ headInit: 'random', runId: 'random' }, Store.open(':memory:'));
  });

  test('before any training the class-mean head is far above chance, and above the random head', () => {
    expect(ncm.summary.reason).toBe('completed');
    expect(ncm.rows[0]!.evalClients).toBe(SITES);
    const [withMeans, withRandom] = [ncm.rows[0]!.valAccuracy, random.rows[0]!.valAccuracy];
    // Chance is 0.1 with ten classes.
    expect(withMeans).toBeGreaterThan(0.6);
    expect(withMeans).toBeGreaterThan(withRandom + 0.3);
  });

  test('the head is the nearest-class-mean classifier of the pooled means, and only counts reach the log', async () => {
    const classes = defaultCoordinatorConfig().classes;
    const expected = await pooledMeans(classes);
    const events = headInits(store);
    expect(events).toHaveLength(1);
    const data = events[0]!.data as { method: string; clients: string[]; counts: number[]; missing: string[] };
    expect(data.method).toBe('class-means');
    expect(data.clients).toEqual(['client-0', 'client-1', 'client-2']);
    expect(data.counts).toEqual(expected.counts);
    expect(data.missing).toEqual([]);

    expectHeadOfMeans(ncm.summary.weights, expected);

    const line = ncm.log.find((l) => l.includes(' head-init '))!;
    expect(line).toContain(`counts=${expected.counts.join(',')}`);
    // No feature sum or mean: the line holds the counts and nothing with a decimal point.
    expect(line).not.toMatch(/\d\.\d/);
  });

  test('a resumed run takes the recorded head and never asks the sites again', async () => {
    const dir = await scratch('class-means-db');
    dirs.push(dir);
    const file = join(dir, 'ftl.db');
    // The first start initialises the head, and is stopped right after it recorded it, before round 1.
    const first = Store.open(file);
    let coordinator: Coordinator | undefined;
    const append = first.appendEvent.bind(first);
    first.appendEvent = (runId, type, data) => {
      append(runId, type, data);
      if (type === 'head-init') coordinator?.stop();
    };
    const stopped = await federate({ headInit: 'class-means', runId: 'resumed' }, first, (c) => (coordinator = c));
    expect(stopped.rows).toHaveLength(0);
    const recorded = headInits(first, 'resumed')[0]!.data as { head: { kernel: number[]; bias: number[] } };
    first.close();

    const second = Store.open(file);
    const resumed = await federate({ headInit: 'class-means', runId: 'resumed' }, second);
    expect(resumed.summary.reason).toBe('completed');
    expect(headInits(second, 'resumed')).toHaveLength(1);
    expect(resumed.log.some((l) => l.includes(' head-init '))).toBe(false);
    // Round 1 started from the recorded head (and did not move it).
    const kernel = tensorValues(resumed.summary.weights, 'head_output/kernel');
    recorded.head.kernel.forEach((v, i) => expect(kernel[i]).toBeCloseTo(v, 6));
    expect(resumed.rows[0]!.valAccuracy).toBeCloseTo(ncm.rows[0]!.valAccuracy, 6);
    second.close();
  });

  test('a site whose class counts add up to more than it declared is refused, left out and recorded; the others set the head', async () => {
    const db = Store.open(':memory:');
    let answer: Ack | undefined;
    const { summary } = await federate({ headInit: 'class-means', runId: 'ncm-liar', minClients: SITES + 1 }, db, undefined, async (url) => {
      // Ready first (it declares 10 training samples), so it is asked like every site.
      const peer = await connectRawPeer(url, 'liar', { numTrain: 10 });
      peer.socket.on('class-sums', async (m: ClassSumsInstruction) => {
        const { classes, featureDim } = peer.welcome.head;
        answer = parseAck(
          await peer.socket.emitWithAck('class-sums-result', {
            protocol: PROTOCOL_VERSION,
            runId: m.runId,
            round: m.round,
            modelVersion: m.modelVersion,
            counts: new Array(classes).fill(1000),
            sums: encodeWeights({
              specs: [{ name: CLASS_SUMS_TENSOR, shape: [classes, featureDim], dtype: 'float32' }],
              values: new Float32Array(classes * featureDim).fill(1e3),
            }),
          }),
        );
        peer.disconnect();
      });
    });
    expect(answer).toMatchObject({
      accepted: false,
      reason: 'bad-sample-count',
      message: expect.stringMatching(/add up to 10000, more than the 10 training samples this site declared/),
    });
    expect(summary.reason).toBe('completed');
    const excluded = db
      .listEvents('ncm-liar')
      .filter((e) => e.type === 'class-sums-excluded')
      .map((e) => e.data);
    expect(excluded).toEqual([expect.objectContaining({ round: 0, client: 'liar', reason: 'bad-sample-count' })]);
    const init = headInits(db, 'ncm-liar')[0]!.data as { clients: string[]; counts: number[] };
    expect(init.clients).toEqual(['client-0', 'client-1', 'client-2']);
    expect(init.counts.reduce((a, b) => a + b, 0)).toBeLessThan(LIMIT);
  });

  test('with federated normalisation the class sums are taken on the normalised images, as the rounds see them', async () => {
    const db = Store.open(':memory:');
    const { summary, rows } = await federate({ headInit: 'class-means', runId: 'ncm-norm', normalization: 'standard' }, db);
    expect(summary.reason).toBe('completed');
    expect(rows[0]!.valAccuracy).toBeGreaterThan(0.6);
    const stored = db.listEvents('ncm-norm').find((e) => e.type === 'normalization')!.data as Normalization;
    expectHeadOfMeans(
      summary.weights,
      await pooledMeans(defaultCoordinatorConfig().classes, { kind: stored.kind, shift: stored.shift, scale: stored.scale }),
    );
  });

  test.each<[string, FineTuning]>([
    ['gradual (LP-FT: the class-mean head first, then conv2 unfrozen in round 2)', fineTuning({ mode: 'gradual', layers: 1, everyRounds: 1 })],
    ['partial (conv2 trains with the class-mean head from round 1)', fineTuning({ mode: 'partial', layers: 1 })],
  ])('combines with %s', async (_, ft) => {
    const db = Store.open(':memory:');
    const { summary, rows } = await federate(
      {
        headInit: 'class-means',
        runId: `ncm-${ft.mode}`,
        fineTuning: ft,
        rounds: 2,
        fit: { epochs: 1, batchSize: 32, learningRate: 0.001 },
      },
      db,
    );
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted])).toEqual([
      ['aggregated', SITES],
      ['aggregated', SITES],
    ]);
    expect(headInits(db, `ncm-${ft.mode}`)).toHaveLength(1);
    // The class-mean start carries through the unfreezing: already well above chance after a round of training.
    expect(rows[0]!.valAccuracy).toBeGreaterThan(0.6);
    expect(summary.weights.specs.map((s) => s.name).slice(0, 2)).toEqual(['conv2/kernel', 'conv2/bias']);
  });
});

/** The pooled within-class scatter of the sites' training features (the same shards, through the real extractor). */
async function pooledScatter(classes: string[], means: Float64Array[]): Promise<Float64Array> {
  const fx = (await loadServedBackbone(SMALL_BACKBONE_DIR)).extractor;
  const mnist = loadBuiltinDataset('mnist');
  const d = fx.featureDim;
  const flat = Float64Array.from(means.flatMap((m) => Array.from(m)));
  const scatter = new Float64Array(d * d);
  for (let index = 0; index < SITES; index++) {
    const shard = loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: SITES, index, seed: 5, limit: LIMIT }, undefined, mnist);
    const train = alignShardToRun(shard, classes).train;
    const own = await withinClassScatter(await extractFeatures(fx, train), train.labels, flat, d);
    for (let k = 0; k < d * d; k++) scatter[k]! += own[k]!;
  }
  return scatter;
}

describe('headInit discriminant over real sockets', () => {
  test('the head is the shrinkage discriminant of the pooled features, and beats the class-mean head before any training', async () => {
    const store = Store.open(':memory:');
    const lda = await federate({ headInit: 'discriminant', runId: 'lda' }, store);
    const ncm = await federate({ headInit: 'class-means', runId: 'ncm-2' }, Store.open(':memory:'));
    expect(lda.summary.reason).toBe('completed');
    const classes = defaultCoordinatorConfig().classes;
    const { means, counts, featureDim } = await pooledMeans(classes);
    const init = headInits(store, 'lda')[0]!.data as { method: string; counts: number[] };
    expect(init).toMatchObject({ method: 'discriminant', counts });
    // The same computation on the pooled features, here: what one site holding every image would get.
    const expected = await discriminantHead(
      lda.summary.weights,
      Float64Array.from(means.flatMap((m) => Array.from(m))),
      counts,
      await pooledScatter(classes, means),
    );
    const kernel = tensorValues(lda.summary.weights, 'head_output/kernel');
    const want = tensorValues(expected, 'head_output/kernel');
    const scale = Math.max(...Array.from(want, Math.abs));
    want.forEach((v, i) => expect(Math.abs(kernel[i]! - v)).toBeLessThan(1e-3 * scale));
    expect(featureDim * classes.length).toBe(want.length);
    expect(lda.rows[0]!.valAccuracy).toBeGreaterThan(ncm.rows[0]!.valAccuracy);
    // Counts only in the log, no statistics.
    const line = lda.log.find((l) => l.includes(' head-init '))!;
    expect(line).toContain('method=discriminant');
    expect(line).not.toMatch(/\d\.\d/);
  });
});
