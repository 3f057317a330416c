import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadExportedModel, Store } from '@ftl/coordinator';
import { backboneLayersOf, initBackend, loadBuiltinDataset, loadClientShard, loadLayersModelFromFolder } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { holdoutAccuracy } from './holdout.js';
import { federateToEnd, scratch } from './test-federation.js';

/**
 * A plain tfjs load of the export (no ftl code) computes (x − shift) / scale from raw images in its first
 * layers, per channel or per value, and predicts the same as ftl's loader.
 */
async function expectNormalizingExport(exportDir: string, raw: Float32Array, shift: number[], scale: number[]): Promise<void> {
  const n = raw.length / 784;
  const model = await loadLayersModelFromFolder(exportDir);
  const viaFtl = await loadExportedModel(exportDir);
  const images = tf.tensor4d(raw, [n, 28, 28, 1]);
  const inner = tf.model({ inputs: model.inputs, outputs: model.getLayer('ftl_input_normalization').output as tf.SymbolicTensor });
  const got = (inner.predict(images) as tf.Tensor).dataSync();
  for (let i = 0; i < got.length; i += 97) {
    const s = shift.length === 1 ? 0 : i % 784;
    expect(got[i]).toBeCloseTo((raw[i]! - shift[s]!) / scale[s]!, 4);
  }
  const [a, b] = [model.predict(images) as tf.Tensor2D, viaFtl.predict(images)];
  expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
  tf.dispose([images, a, b]);
  model.dispose();
  viaFtl.dispose();
}

describe('federated normalisation', () => {
  test('clients send channel statistics, the coordinator combines them as on pooled data, every round carries the result', async () => {
    await initBackend();
    const dir = await scratch('normalization');
    const store = Store.open(join(dir, 'c.db'));
    const exportDir = join(dir, 'model');
    const { summary } = await federateToEnd(
      {
        runId: 'norm',
        rounds: 2,
        normalization: 'standard',
        exportDir,
        fit: { epochs: 3, batchSize: 32, learningRate: 0.002 },
        waitTimeoutMs: 60_000,
      },
      { store, sites: 2, limit: 600, cacheDir: () => join(dir, 'cache') },
    );

    // The pooled statistics of both sites' training images, computed here directly.
    const mnist = loadBuiltinDataset('mnist');
    const pooled = [0, 1].flatMap((index) =>
      Array.from(
        loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 2, index, seed: 5, limit: 600 }, undefined, mnist).train.images,
      ),
    );
    const mean = pooled.reduce((a, b) => a + b, 0) / pooled.length;
    const std = Math.sqrt(pooled.reduce((a, b) => a + (b - mean) ** 2, 0) / pooled.length);
    const event = store.listEvents('norm').find((e) => e.type === 'normalization')!;
    expect(event.data).toMatchObject({ kind: 'standard', clients: ['client-0', 'client-1'] });
    const { shift, scale } = event.data as { shift: number[]; scale: number[] };
    expect(shift[0]).toBeCloseTo(mean, 5);
    expect(scale[0]).toBeCloseTo(std, 5);

    expect(summary.rounds.every((r) => r.accepted === 2 && r.evalClients === 2)).toBe(true);
    expect(summary.rounds.at(-1)!.valAccuracy).toBeGreaterThan(0.6);
    const meta = JSON.parse(await readFile(join(exportDir, 'ftl-model.json'), 'utf8')) as { inputNormalization: unknown };
    expect(meta).toMatchObject({ inputNormalization: { kind: 'standard', shift, scale }, inputNormalizationInModel: true });
    // The export normalises in its first layer, so it takes raw images like any other.
    const { accuracy } = await holdoutAccuracy(exportDir);
    expect(accuracy).toBeGreaterThan(0.8); // measured 0.83; without the normalisation the same weights score 0.77
    await expectNormalizingExport(exportDir, mnist.images.subarray(0, 50 * 784), shift, scale);
    store.close();
  });

  test('per-feature scope (tabular data: one statistic per column) with min-max', async () => {
    await initBackend();
    const dir = await scratch('normalization-feature');
    const store = Store.open(join(dir, 'c.db'));
    const { summary } = await federateToEnd(
      {
        runId: 'norm-f',
        rounds: 1,
        normalization: 'min-max',
        normalizationScope: 'feature',
        exportDir: join(dir, 'model'),
        fit: { epochs: 2, batchSize: 32, learningRate: 0.002 },
        waitTimeoutMs: 60_000,
      },
      { store, sites: 2, limit: 400, cacheDir: () => join(dir, 'cache') },
    );
    const mnist = loadBuiltinDataset('mnist');
    const trains = [0, 1].map(
      (index) => loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 2, index, seed: 5, limit: 400 }, undefined, mnist).train,
    );
    const { shift, scale } = store.listEvents('norm-f').find((e) => e.type === 'normalization')!.data as { shift: number[]; scale: number[] };
    expect(shift).toHaveLength(784);
    for (const at of [0, 300, 406]) {
      const values = trains.flatMap((t) => Array.from({ length: t.n }, (_, i) => t.images[i * 784 + at]!));
      const lo = Math.min(...values);
      const hi = Math.max(...values);
      expect(shift[at]).toBeCloseTo(lo, 6);
      expect(scale[at]).toBeCloseTo(hi - lo > 1e-12 ? hi - lo : 1, 6);
    }
    expect(summary.rounds[0]).toMatchObject({ accepted: 2, evalClients: 2 });
    await expectNormalizingExport(join(dir, 'model'), mnist.images.subarray(0, 50 * 784), shift, scale);
    store.close();
  });
});

describe('federated normalisation with fine-tuning', () => {
  // The client compares the round's trainable backbone layers with the plan it builds; the normalisation
  // the round carries is part of what the trainer was built for, not of the layer list.
  test.each([
    ['partial k=1', { mode: 'partial', layers: 1, everyRounds: 1, backboneLrFactor: 1 }],
    ['gradual', { mode: 'gradual', layers: 1, everyRounds: 1, backboneLrFactor: 1 }],
  ] as const)('%s: every round trains on both sites and the run completes', async (_, fineTuning) => {
    await initBackend();
    const dir = await scratch('normalization-ft');
    const { summary, rows } = await federateToEnd(
      {
        runId: 'norm-ft',
        rounds: 2,
        normalization: 'standard',
        fineTuning,
        fit: { epochs: 1, batchSize: 32, learningRate: 0.002 },
        waitTimeoutMs: 60_000,
        roundDeadlineMs: 120_000,
      },
      { sites: 2, limit: 300, cacheDir: (index) => join(dir, `cache-${index}`) },
    );
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted])).toEqual([
      ['aggregated', 2],
      ['aggregated', 2],
    ]);
    expect(backboneLayersOf(summary.weights.specs)).toEqual(['conv2']); // the last round trained conv2 on normalised images
  });
});
