import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, test } from 'vitest';
import { loadBuiltinDataset } from '../data/builtin.js';
import { subset } from '../data/dataset.js';
import { initBackend } from './backend.js';

beforeAll(async () => {
  await initBackend({ force: 'wasm' });
});

/** Trains a small seeded CNN on `backend` and returns its accuracy on the test images. */
async function trainAndTest(
  backend: 'cpu' | 'wasm',
  train: { x: Float32Array; y: Int32Array },
  test: { x: Float32Array; y: Int32Array },
): Promise<number> {
  await tf.setBackend(backend);
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 6,
        kernelSize: 5,
        strides: 2,
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: 1 }),
      }),
      tf.layers.depthwiseConv2d({
        kernelSize: 3,
        depthMultiplier: 2,
        padding: 'same',
        activation: 'relu',
        depthwiseInitializer: tf.initializers.heNormal({ seed: 2 }),
      }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.003), loss: 'categoricalCrossentropy' });
  const x = tf.tensor4d(train.x, [train.y.length, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(train.y, 'int32'), 10);
  await model.fit(x, y, { epochs: 4, batchSize: 16, shuffle: false, verbose: 0 });
  const predicted = Array.from((model.predict(tf.tensor4d(test.x, [test.y.length, 28, 28, 1])) as tf.Tensor).argMax(1).dataSync());
  model.dispose();
  tf.dispose([x, y]);
  return predicted.reduce((hits, p, i) => hits + (p === test.y[i] ? 1 : 0), 0) / test.y.length;
}

test('a small CNN (conv + depthwise conv) trained on wasm reaches the cpu accuracy for the same seed and data', async () => {
  const mnist = loadBuiltinDataset('mnist');
  const pick = (from: number, n: number) =>
    subset(
      mnist,
      Array.from({ length: n }, (_, i) => (from + i * 13) % mnist.n),
    );
  const train = pick(0, 640);
  const test = pick(5, 500);
  const cpu = await trainAndTest('cpu', { x: train.images, y: train.labels }, { x: test.images, y: test.labels });
  const wasm = await trainAndTest('wasm', { x: train.images, y: train.labels }, { x: test.images, y: test.labels });
  expect(cpu).toBeGreaterThan(0.6); // it learned: chance is 0.1
  expect(Math.abs(wasm - cpu)).toBeLessThanOrEqual(0.01);
});
