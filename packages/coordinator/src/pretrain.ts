import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  createDefaultBackbone, createRng, DEFAULT_FEATURE_LAYER, initBackend, loadBuiltinDataset,
  saveLayersModelToFolder, shuffleInPlace, splitIndices, subset, type ImageDataset, type Logger,
} from '@ftl/shared';
import { BACKBONE_META_FILE, type BackboneMeta } from './backbone-meta.js';

/** Options of `npm run pretrain`. */
export interface PretrainOptions {
  out: string;
  /** Training images drawn from Fashion-MNIST (the rest of the 70,000, less the test set, is unused). */
  samples: number;
  epochs: number;
  /** Filters of the two convolutions. */
  filters: [number, number];
  batchSize: number;
  learningRate: number;
  seed: number;
  /** Fashion-MNIST images held out to report source-domain accuracy. */
  testSamples: number;
  log: Logger;
  /** Progress sink (one line per event); stdout in the CLI. */
  progress: (line: string) => void;
}

function toTensors(ds: ImageDataset, order: ArrayLike<number>): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const s = subset(ds, order);
  return {
    x: tf.tensor4d(s.images, [s.n, s.height, s.width, s.channels]),
    y: tf.oneHot(tf.tensor1d(s.labels, 'int32'), ds.classes.length) as tf.Tensor2D,
  };
}

/**
 * Pretrains the default backbone on Fashion-MNIST (the source domain) and saves it as a TensorFlow.js
 * layers model with an `ftl-backbone.json` description (feature layer, accuracy, time, command).
 */
export async function pretrainBackbone(o: PretrainOptions): Promise<BackboneMeta> {
  const backend = await initBackend({ log: o.log });
  const t0 = performance.now();
  const all = loadBuiltinDataset('fashion-mnist', o.log);
  const [rest, testIdx] = splitIndices(all.n, o.testSamples / all.n, o.seed);
  // `rest` is sorted, and the classes are contiguous: shuffle before taking a sample of it.
  const trainIdx = shuffleInPlace(rest, createRng(o.seed + 1)).slice(0, o.samples);
  const train = subset(all, trainIdx);
  const test = subset(all, testIdx);
  o.progress(`pretrain: ${train.n} Fashion-MNIST training images, ${test.n} test images, backend ${backend}`);

  const model = createDefaultBackbone({ seed: o.seed, classes: all.classes.length, filters: o.filters });
  model.compile({ optimizer: tf.train.adam(o.learningRate), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const rng = createRng(o.seed + 2);
  const order = Int32Array.from({ length: train.n }, (_, i) => i);
  const trainStart = performance.now();
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    shuffleInPlace(order, rng);
    const { x, y } = toTensors(train, order);
    const batches = Math.ceil(train.n / o.batchSize);
    const h = await model.fit(x, y, {
      epochs: 1, batchSize: o.batchSize, shuffle: false, verbose: 0,
      callbacks: {
        onBatchEnd: async (batch) => {
          if ((batch + 1) % 100 === 0) {
            const s = (performance.now() - trainStart) / 1000;
            o.progress(`  epoch ${epoch}/${o.epochs} batch ${batch + 1}/${batches} (${s.toFixed(0)} s)`);
          }
        },
      },
    });
    x.dispose();
    y.dispose();
    const loss = h.history['loss']?.[0] as number;
    const acc = h.history['acc']?.[0] ?? h.history['accuracy']?.[0];
    o.progress(`epoch ${epoch}/${o.epochs}: loss ${loss.toFixed(4)} train accuracy ${(Number(acc) * 100).toFixed(1)}% ` +
      `(${((performance.now() - trainStart) / 1000).toFixed(0)} s)`);
  }
  const trainingSeconds = (performance.now() - trainStart) / 1000;
  const { x, y } = toTensors(test, Int32Array.from({ length: test.n }, (_, i) => i));
  const [, accT] = model.evaluate(x, y, { batchSize: 500 }) as tf.Scalar[];
  const testAccuracy = (await accT!.data())[0]!;
  tf.dispose([x, y]);
  const { digest } = await saveLayersModelToFolder(model, o.out);
  const meta: BackboneMeta = {
    name: 'ftl-default-backbone',
    featureLayer: DEFAULT_FEATURE_LAYER,
    inputShape: [28, 28, 1],
    sha256: digest,
    source: {
      dataset: 'fashion-mnist', trainSamples: train.n, testSamples: test.n, epochs: o.epochs, filters: o.filters,
      batchSize: o.batchSize, learningRate: o.learningRate, seed: o.seed, testAccuracy, trainingSeconds, backend,
    },
    command: `npm run pretrain -- --samples ${o.samples} --epochs ${o.epochs} --filters ${o.filters.join(',')} --seed ${o.seed}`,
  };
  await writeFile(join(o.out, BACKBONE_META_FILE), JSON.stringify(meta, null, 2) + '\n');
  o.progress(`source-domain (Fashion-MNIST) test accuracy ${(testAccuracy * 100).toFixed(2)}% on ${test.n} images; ` +
    `training ${trainingSeconds.toFixed(0)} s, total ${((performance.now() - t0) / 1000).toFixed(0)} s; saved to ${o.out}`);
  return meta;
}
