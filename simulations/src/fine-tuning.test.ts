import { readdir, readFile, writeFile } from 'node:fs/promises';
import type * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import {
  BACKBONE_META_FILE,
  SMALL_BACKBONE_DIR,
  defaultCoordinatorConfig,
  loadServedBackbone,
  Store,
  type CoordinatorConfig,
  type RoundRecord,
} from '@ftl/coordinator';
import * as tfjs from '@tensorflow/tfjs';
import {
  createTrainableNetwork,
  federationSplit,
  getTrainableWeights,
  initBackend,
  loadBuiltinDataset,
  loadLayersModelFromFolder,
  saveLayersModelToFolder,
  subset,
  unfrozenLayerCount,
  writeModelFiles,
  DEFAULT_FINE_TUNING,
  type FineTuning,
  type LayersFeatureExtractor,
} from '@ftl/shared';
import { batchNormEncoder, TINY_GRAPH_NODES, tinyGraphModelFiles } from '@ftl/shared/testing';
import { beforeAll, describe, expect, test } from 'vitest';
import { holdoutAccuracy } from './holdout.js';
import { federateToEnd, scratch, tensorValues, type RunOutcome } from './test-federation.js';

// conv2 of small-fmnist, the backbone test federations run on: 3×3×16×32 kernel + 32 biases.
const CONV2_VALUES = 3 * 3 * 16 * 32 + 32;
// conv1 of small-fmnist: 5×5×1×16 kernel + 16 biases.
const CONV1_VALUES = 5 * 5 * 1 * 16 + 16;
// Per update besides the values: the two extra tensors' specs ({name, shape, dtype} in msgpack, ~87
// bytes) and float metrics that may encode a few bytes shorter or longer.
const SPEC_SLACK = 120;

const fineTuning = (over: Partial<FineTuning>): FineTuning => ({ ...DEFAULT_FINE_TUNING, ...over });

/** A real coordinator (optionally on a SQLite store) and `sites` real clients (default two) on 600 MNIST samples. */
function federate(dir: string, over: Partial<CoordinatorConfig>, store?: Store, sites = 2): Promise<RunOutcome> {
  return federateToEnd(
    { runId: 'ft-run', waitTimeoutMs: 60_000, roundDeadlineMs: 120_000, rounds: 2, fit: { epochs: 3, batchSize: 16, learningRate: 0.002 }, ...over },
    { store, sites, limit: 600, cacheDir: (index) => join(dir, `cache-${index}`) },
  );
}

/**
 * A small encoder with batch normalisation, as the transfer backbones are built (convolution without
 * bias → batch norm → ReLU, twice, global average pooling to `features`), briefly pretrained on 1,000
 * images of the federation's training split (so its statistics are real ones, far from 0 and 1), saved
 * as a backbone folder.
 */
async function batchNormBackbone(dir: string): Promise<string> {
  await initBackend();
  const model = batchNormEncoder({ filters: [8, 16], seed: 3 });
  model.add(tfjs.layers.dense({ name: 'source_logits', units: 10, activation: 'softmax' }));
  const pool = subset(
    federationSplit(loadBuiltinDataset('mnist')).pool,
    Array.from({ length: 1000 }, (_, i) => i),
  );
  const x = tfjs.tensor4d(pool.images, [pool.n, 28, 28, 1]);
  const y = tfjs.oneHot(tfjs.tensor1d(pool.labels, 'int32'), 10);
  model.compile({ optimizer: tfjs.train.adam(0.01), loss: 'categoricalCrossentropy' });
  await model.fit(x, y, { epochs: 3, batchSize: 32, verbose: 0 });
  tfjs.dispose([x, y]);
  await saveLayersModelToFolder(model, dir);
  await writeFile(join(dir, BACKBONE_META_FILE), JSON.stringify({ name: 'bn-encoder', featureLayer: 'features', inputShape: [28, 28, 1] }));
  model.dispose();
  return dir;
}

let headOnly: RoundRecord[];

beforeAll(async () => {
  // The reference: today's head-only federation with the same data, seed and settings.
  headOnly = (await federate(await scratch('ft-fe'), {})).rows;
  expect(headOnly.map((r) => r.status)).toEqual(['aggregated', 'aggregated']);
});

describe('fine-tuning modes over real sockets', () => {
  test('partial k=1: conv2 travels with the head (exactly its bytes more per update), the export carries the federated conv2, accuracy well above chance', async () => {
    const dir = await scratch('ft-partial');
    const { summary, rows } = await federate(dir, { exportDir: join(dir, 'model'), fineTuning: fineTuning({ mode: 'partial', layers: 1 }) });
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted])).toEqual([
      ['aggregated', 2],
      ['aggregated', 2],
    ]);
    expect(summary.weights.specs.slice(0, 2).map((s) => `${s.name} [${s.shape.join(',')}]`)).toEqual(['conv2/kernel [3,3,16,32]', 'conv2/bias [32]']);
    // Only the features below conv2 (train and validation) were extracted and cached, none at the unused cut.
    expect(await readdir(join(dir, 'cache-0', 'features'))).toHaveLength(2);
    // Two updates per round, each CONV2_VALUES float32 values larger than a head-only one.
    for (const r of [0, 1]) {
      const extra = rows[r]!.bytesIn - headOnly[r]!.bytesIn;
      expect(extra).toBeGreaterThanOrEqual(2 * CONV2_VALUES * 4);
      expect(extra).toBeLessThan(2 * (CONV2_VALUES * 4 + SPEC_SLACK));
    }

    const exported = (await loadLayersModelFromFolder(join(dir, 'model'))) as tf.LayersModel;
    const kernelOf = (m: tf.LayersModel, layer: string) => Array.from(m.getLayer(layer).getWeights()[0]!.dataSync());
    const kernel = kernelOf(exported, 'conv2');
    expect(kernel).toEqual(Array.from(tensorValues(summary.weights, 'conv2/kernel')));
    const pretrained = (await loadServedBackbone(SMALL_BACKBONE_DIR)).extractor.model as tf.LayersModel;
    const original = kernelOf(pretrained, 'conv2');
    expect(Math.sqrt(kernel.reduce((s, v, i) => s + (v - original[i]!) ** 2, 0))).toBeGreaterThan(1e-2);
    expect(kernelOf(exported, 'conv1')).toEqual(kernelOf(pretrained, 'conv1')); // frozen below the boundary
    const meta = JSON.parse(await readFile(join(dir, 'model', 'ftl-model.json'), 'utf8')) as { trainedBackboneLayers: string[] };
    expect(meta.trainedBackboneLayers).toEqual(['conv2']);
    expect((await holdoutAccuracy(join(dir, 'model'))).accuracy).toBeGreaterThan(0.7); // chance is 0.1
  });

  test("gradual every round with FedAdam: round 1 carries the head only, round 2 also conv2; the server moments grow with it; a continued run resumes from the checkpoint's trainable set", async () => {
    const dir = await scratch('ft-gradual');
    const store = Store.open(join(dir, 'coordinator.db'));
    const over: Partial<CoordinatorConfig> = {
      runId: 'gradual',
      fineTuning: fineTuning({ mode: 'gradual', layers: 2, everyRounds: 1, backboneLrFactor: 0.5 }),
      strategy: { name: 'fedadam', options: { eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 0.001 } },
    };
    const { summary, rows } = await federate(dir, over, store);
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => r.status)).toEqual(['aggregated', 'aggregated']);
    const extra = rows.map((r, i) => r.bytesIn - headOnly[i]!.bytesIn);
    expect(Math.abs(extra[0]!)).toBeLessThan(2 * SPEC_SLACK);
    expect(extra[1]).toBeGreaterThanOrEqual(2 * CONV2_VALUES * 4);
    expect(extra[1]).toBeLessThan(2 * (CONV2_VALUES * 4 + SPEC_SLACK));
    expect(
      store
        .listEvents('gradual')
        .filter((e) => e.type === 'unfreeze')
        .map((e) => e.data as { round: number; layers: string[] }),
    ).toEqual([expect.objectContaining({ round: 2, layers: ['conv2'] })]);
    const checkpoint = store.latestCheckpoint('gradual')!;
    expect(checkpoint.specs.map((s) => s.name).slice(0, 2)).toEqual(['conv2/kernel', 'conv2/bias']);
    expect(checkpoint.strategyState['m']!.length).toBe(checkpoint.values.length);

    // The same run on the same database with a third round: it resumes from round 2's checkpoint (head +
    // conv2, FedAdam moments of that size), and round 3 unfreezes conv1 too.
    const more = await federate(dir, { ...over, rounds: 3 }, store);
    expect(more.rows.map((r) => r.round)).toEqual([3]);
    expect(more.summary.weights.specs.slice(0, 4).map((s) => s.name)).toEqual(['conv1/kernel', 'conv1/bias', 'conv2/kernel', 'conv2/bias']);
    expect(more.summary.weights.values.every(Number.isFinite)).toBe(true);
    expect(more.rows[0]!.valAccuracy).toBeGreaterThan(0.6);
    store.close();
  });

  test('the message limit is sized from the largest trainable set: unfreezing fc (51,264 values) under a 650-value head still gets through', async () => {
    // Cut at fc (64 features) with a linear head: a head-sized limit (2 × 2.6 KB + 64 KiB) would drop round 2's 205 KB updates.
    const { summary, rows } = await federate(await scratch('ft-limit'), {
      featureLayer: 'fc',
      hidden: [],
      fineTuning: fineTuning({ mode: 'gradual', layers: 1, everyRounds: 1 }),
    });
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted, r.rejected])).toEqual([
      ['aggregated', 2, 0],
      ['aggregated', 2, 0],
    ]);
    expect(summary.weights.values.length).toBe(800 * 64 + 64 + 64 * 10 + 10);
    expect(rows[1]!.bytesIn).toBeGreaterThan(2 * summary.weights.values.length * 4);
  });

  test('scratch, 3 sites: every update carries every backbone tensor (drawn afresh, none pretrained), no features are cached, the export loads and beats chance on held-out digits', async () => {
    const dir = await scratch('ft-scratch');
    // The same three sites and settings head-only, for the traffic comparison.
    const transfer = await federate(await scratch('ft-scratch-fe'), { runId: 'fe-3' }, undefined, 3);
    const { summary, rows } = await federate(
      dir,
      { runId: 'scratch', exportDir: join(dir, 'model'), fineTuning: fineTuning({ mode: 'scratch' }) },
      undefined,
      3,
    );
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted, r.rejected])).toEqual([
      ['aggregated', 3, 0],
      ['aggregated', 3, 0],
    ]);
    // The global model (and so every accepted update, checked against its specs) is every backbone layer, then the head.
    expect(summary.weights.specs.map((s) => `${s.name} [${s.shape.join(',')}]`).slice(0, 4)).toEqual([
      'conv1/kernel [5,5,1,16]',
      'conv1/bias [16]',
      'conv2/kernel [3,3,16,32]',
      'conv2/bias [32]',
    ]);
    expect(summary.weights.values.length).toBe(transfer.summary.weights.values.length + CONV1_VALUES + CONV2_VALUES);
    // Each round: three updates, each exactly both conv layers' bytes more than a head-only one.
    for (const r of [0, 1]) {
      const extra = rows[r]!.bytesIn - transfer.rows[r]!.bytesIn;
      expect(extra).toBeGreaterThanOrEqual(3 * (CONV1_VALUES + CONV2_VALUES) * 4);
      expect(extra).toBeLessThan(3 * ((CONV1_VALUES + CONV2_VALUES) * 4 + 2 * SPEC_SLACK));
    }
    // Nothing is frozen, so nothing is extracted or cached: the sites train on their images.
    expect(await readdir(join(dir, 'cache-0')).then((names) => names.includes('features'))).toBe(false);

    // The conv layers started from their initialisers seeded by the run's seed, not from the pretrained
    // backbone: two rounds of training left them near that start and far from the pretrained values.
    const served = await loadServedBackbone(SMALL_BACKBONE_DIR);
    const pretrained = served.extractor.model as tf.LayersModel;
    const start = createTrainableNetwork(
      served.extractor.at(served.featureLayer) as LayersFeatureExtractor,
      unfrozenLayerCount(fineTuning({ mode: 'scratch' }), 1),
      { featureDim: 800, hidden: [128], classes: 10 },
      defaultCoordinatorConfig().seed,
      { backbone: 'random' },
    );
    const initial = getTrainableWeights(start.model);
    start.model.dispose();
    const distance = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));
    const exported = (await loadLayersModelFromFolder(join(dir, 'model'))) as tf.LayersModel;
    for (const layer of ['conv1', 'conv2']) {
      const kernel = Array.from(exported.getLayer(layer).getWeights()[0]!.dataSync());
      expect(kernel).toEqual(Array.from(tensorValues(summary.weights, `${layer}/kernel`)));
      const original = pretrained.getLayer(layer).getWeights()[0]!.dataSync();
      expect(kernel.some((v, i) => v === original[i])).toBe(false);
      expect(distance(kernel, tensorValues(initial, `${layer}/kernel`))).toBeLessThan(distance(kernel, original) / 2);
    }
    const meta = JSON.parse(await readFile(join(dir, 'model', 'ftl-model.json'), 'utf8')) as {
      trainedBackboneLayers: string[];
      fineTuning: FineTuning;
    };
    expect(meta.trainedBackboneLayers).toEqual(['conv1', 'conv2']);
    expect(meta.fineTuning.mode).toBe('scratch');
    expect((await holdoutAccuracy(join(dir, 'model'))).accuracy).toBeGreaterThan(0.6); // chance is 0.1
  });

  test('scratch sizes the message limit from the whole network: under a 650-value head at fc, conv1, conv2 and fc (56,320 values) get through', async () => {
    // A head-sized limit (2 × 2.6 KB + 64 KiB) would drop every 227 KB update.
    const { summary, rows } = await federate(await scratch('ft-scratch-limit'), {
      featureLayer: 'fc',
      hidden: [],
      fineTuning: fineTuning({ mode: 'scratch' }),
    });
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted, r.rejected])).toEqual([
      ['aggregated', 2, 0],
      ['aggregated', 2, 0],
    ]);
    expect(summary.weights.specs.map((s) => s.name).slice(0, 6)).toEqual([
      'conv1/kernel',
      'conv1/bias',
      'conv2/kernel',
      'conv2/bias',
      'fc/kernel',
      'fc/bias',
    ]);
    expect(summary.weights.values.length).toBe(CONV1_VALUES + CONV2_VALUES + 800 * 64 + 64 + 64 * 10 + 10);
  });

  test.each([
    ['scratch', fineTuning({ mode: 'scratch' }), ['conv1', 'bn1', 'conv2', 'bn2']],
    ['partial through the top batch norm', fineTuning({ mode: 'partial', layers: 2 }), ['conv2', 'bn2']],
  ])(
    'an encoder with batch normalisation, %s: scale and offset travel, statistics never do; the export holds them folded and beats chance on held-out digits',
    async (_, ft, layers) => {
      const dir = await scratch('ft-bn');
      const backboneDir = await batchNormBackbone(join(dir, 'backbone'));
      const { summary, rows } = await federate(dir, {
        backboneDir,
        exportDir: join(dir, 'model'),
        fineTuning: ft,
        fit: { epochs: 5, batchSize: 16, learningRate: 0.01 },
      });
      expect(summary.reason).toBe('completed');
      expect(rows.map((r) => [r.status, r.accepted, r.rejected])).toEqual([
        ['aggregated', 2, 0],
        ['aggregated', 2, 0],
      ]);
      const names = summary.weights.specs.map((s) => s.name);
      expect(names.filter((n) => !n.startsWith('head_'))).toEqual(
        layers.flatMap((l) => (l.startsWith('bn') ? [`${l}/gamma`, `${l}/beta`] : [`${l}/kernel`])),
      );

      const exported = (await loadLayersModelFromFolder(join(dir, 'model'))) as tf.LayersModel;
      for (const layer of layers.filter((l) => l.startsWith('bn'))) {
        const [gamma, beta, mean, variance] = exported
          .getLayer(layer)
          .getWeights()
          .map((t) => Array.from(t.dataSync()));
        expect([gamma, beta]).toEqual([
          Array.from(tensorValues(summary.weights, `${layer}/gamma`)),
          Array.from(tensorValues(summary.weights, `${layer}/beta`)),
        ]);
        expect([mean, variance]).toEqual([Array(mean!.length).fill(0), Array(variance!.length).fill(1)]);
      }
      // A small encoder with a 16-value embedding, two short rounds: 0.35–0.40 measured (head only on it: 0.30); chance is 0.1.
      expect((await holdoutAccuracy(join(dir, 'model'))).accuracy).toBeGreaterThan(0.25);
    },
  );

  test('unsupported combinations are refused before the run starts, saying what to change', async () => {
    await expect(federate(await scratch('ft-bad'), { fineTuning: fineTuning({ mode: 'scratch', layers: 2 }) })).rejects.toThrow(
      /fineTuning.layers is 2 but mode "scratch" re-initialises and trains every backbone layer below the cut; leave fineTuning.layers out/,
    );
    const graph = join(await scratch('ft-graph'), 'backbone');
    await writeModelFiles(graph, tinyGraphModelFiles({ seed: 2 }));
    await writeFile(
      join(graph, BACKBONE_META_FILE),
      JSON.stringify({ name: 'tiny', featureLayer: TINY_GRAPH_NODES.features, inputShape: [28, 28, 1] }),
    );
    await expect(federate(await scratch('ft-bad'), { backboneDir: graph, fineTuning: fineTuning({ mode: 'scratch' }) })).rejects.toThrow(
      /fineTuning.mode "scratch" re-initialises the backbone's layers, but the backbone .* is a graph model, whose layers cannot be re-initialised/,
    );
    await expect(federate(await scratch('ft-bad'), { fineTuning: fineTuning({ mode: 'partial' }), localLayers: ['head_output'] })).rejects.toThrow(
      /localLayers \(head_output\) work only with fineTuning.mode "feature-extraction" \(got "partial"\)/,
    );
    await expect(federate(await scratch('ft-bad'), { fineTuning: fineTuning({ mode: 'gradual', layers: 3 }) })).rejects.toThrow(
      /fineTuning.layers is 3 but the backbone has only 2 layers with weights below the cut "features" \(conv2, conv1\)/,
    );
  });
});
