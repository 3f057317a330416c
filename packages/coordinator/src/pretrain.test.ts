import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createLogger, initBackend, loadBuiltinDataset, subset } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BACKBONE_META_FILE } from './backbone-meta.js';
import { loadServedBackbone } from './backbone-server.js';
import { createEncoderBackbone, pretrainBackbone, pretrainCommand, type PretrainOptions } from './pretrain.js';

let scratch: string;

beforeAll(async () => {
  await initBackend({ force: 'wasm' });
  scratch = await mkdtemp(join(tmpdir(), 'ftl-pretrain-'));
});

afterAll(async () => {
  await tf.setBackend('wasm');
  await rm(scratch, { recursive: true, force: true });
});

describe('createEncoderBackbone', () => {
  test('nearly all parameters sit in the encoder; its 128-value embedding takes a 1,290-value linear head', () => {
    const model = createEncoderBackbone({ seed: 1, classes: 10 });
    try {
      const features = model.getLayer('features');
      expect(features.getClassName()).toBe('GlobalAveragePooling2D');
      expect(features.outputShape).toEqual([null, 128]);
      const head = model.getLayer('source_logits').countParams();
      expect(head).toBe(128 * 10 + 10);
      // 3×3 convolutions 1→16, 16→32, 32→64, 64→128 without bias, and four batch normalisations (4 values per filter).
      const convs = 9 * (1 * 16 + 16 * 32 + 32 * 64 + 64 * 128);
      const norms = 4 * (16 + 32 + 64 + 128);
      expect(model.countParams() - head).toBe(convs + norms);
      expect((model.countParams() - head) / head).toBeGreaterThan(50);
    } finally {
      model.dispose();
    }
  });

  test('spatial: a 1×1 block keeps the final 4×4 grid, flattened, as the features', () => {
    const model = createEncoderBackbone({ seed: 1, classes: 10, spatial: 16 });
    try {
      expect(model.getLayer('features').getClassName()).toBe('Flatten');
      expect(model.getLayer('features').outputShape).toEqual([null, 4 * 4 * 16]);
      expect(model.getLayer('source_logits').countParams()).toBe(256 * 10 + 10);
    } finally {
      model.dispose();
    }
  });

  test('refuses an encoder without blocks', () => {
    expect(() => createEncoderBackbone({ seed: 1, classes: 10, blocks: [] })).toThrow(/at least one block/);
  });
});

/** All weights (batch-normalisation moving statistics included) after one plain SGD step on `backend`. */
async function oneStep(backend: 'cpu' | 'wasm', x: Float32Array, labels: Int32Array): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const model = createEncoderBackbone({ seed: 3, classes: 10, blocks: [4, 8], embedding: 16 });
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
  const xs = tf.tensor4d(x, [labels.length, 28, 28, 1]);
  const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
  await model.fit(xs, ys, { epochs: 1, batchSize: labels.length, shuffle: false, verbose: 0 });
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  tf.dispose([xs, ys]);
  model.dispose();
  return weights;
}

test('batch normalisation trains on wasm as on the cpu backend: one step moves every weight and statistic the same', async () => {
  const mnist = loadBuiltinDataset('mnist');
  const batch = subset(
    mnist,
    Array.from({ length: 64 }, (_, i) => i * 37),
  );
  const cpu = await oneStep('cpu', batch.images, batch.labels);
  const wasm = await oneStep('wasm', batch.images, batch.labels);
  expect(wasm.length).toBe(cpu.length);
  let largest = 0;
  cpu.forEach((c, k) => c.forEach((v, i) => (largest = Math.max(largest, Math.abs(v - wasm[k]![i]!) / (1e-3 + Math.abs(v))))));
  expect(largest).toBeLessThan(1e-3);
});

/** A small encoder pretrained on five classes with augmentation: seconds of training. */
const options: Omit<PretrainOptions, 'out' | 'log' | 'progress'> = {
  arch: 'encoder',
  samples: 400,
  epochs: 1,
  filters: [4, 8],
  embedding: 16,
  classes: [0, 1, 2, 3, 4],
  augment: { shift: 0.1, flip: true },
  batchSize: 64,
  learningRate: 0.003,
  finalLrFactor: 0.1,
  seed: 5,
  testSamples: 300,
};

describe('pretrainBackbone', () => {
  test('pretrains on some Fashion-MNIST classes and describes the result: architecture, classes, accuracy, sizes, command', async () => {
    const out = join(scratch, 'encoder-0to4');
    const lines: string[] = [];
    const meta = await pretrainBackbone({ ...options, out, log: createLogger('pretrain', { level: 'warn' }), progress: (l) => lines.push(l) });
    expect(JSON.parse(await readFile(join(out, BACKBONE_META_FILE), 'utf8'))).toEqual(meta);
    expect(meta.architecture).toEqual({ arch: 'encoder', filters: [4, 8], embedding: 16, featureDim: 16 });
    expect(meta.parameters).toEqual({ encoder: 9 * (4 + 4 * 8 + 8 * 16) + 4 * (4 + 8 + 16), linearHead10: 170 });
    expect(meta.source.classes).toEqual([0, 1, 2, 3, 4]);
    expect(meta.source.classNames).toEqual(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat']);
    // About half of the drawn images, and of the held-out ones, belong to the five classes.
    expect(meta.source.trainSamples).toBeGreaterThan(150);
    expect(meta.source.trainSamples).toBeLessThan(250);
    expect(meta.source.testSamples).toBeGreaterThan(100);
    expect(meta.source.testSamples).toBeLessThan(200);
    expect(meta.source.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(meta.source.testAccuracy).toBeLessThanOrEqual(1);
    expect(meta.command).toBe(pretrainCommand(options));
    expect(lines.at(-1)).toMatch(/held-out accuracy .* saved to/);

    const served = await loadServedBackbone(out);
    expect([served.featureLayer, served.featureDim, served.sha256]).toEqual(['features', 16, meta.sha256]);
    served.extractor.dispose();
  });

  test('refuses classes that Fashion-MNIST does not have', async () => {
    await expect(
      pretrainBackbone({
        ...options,
        classes: [3, 10],
        out: join(scratch, 'bad'),
        log: createLogger('pretrain', { level: 'warn' }),
        progress: () => {},
      }),
    ).rejects.toThrow(/two or more distinct indices 0–9/);
  });
});

test('pretrainCommand repeats every option that shapes the backbone', () => {
  expect(
    // The small run's options at full size.
    pretrainCommand({
      ...options,
      out: 'packages/coordinator/backbones/x',
      samples: 60000,
      epochs: 6,
      filters: [16, 32, 64],
      embedding: 128,
      batchSize: 256,
      finalLrFactor: 0.05,
      seed: 1,
      testSamples: 10000,
    }),
  ).toBe(
    'npm run pretrain -- --arch encoder --out packages/coordinator/backbones/x --samples 60000 --epochs 6 --filters 16,32,64 ' +
      '--embedding 128 --classes 0,1,2,3,4 --shift 0.1 --flip --batch-size 256 --lr 0.003 --final-lr-factor 0.05 --seed 1',
  );
});
