import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../expect-ftl-error.js';
import { loadBuiltinDataset } from '../data/builtin.js';
import { subset } from '../data/dataset.js';
import { initBackend } from './backend.js';
import { createDefaultBackbone, featureExtractor, type LayersFeatureExtractor } from './backbone.js';
import { getTrainableWeights, headParameterCount } from './head.js';
import {
  backboneLayersOf, boundaryFeatures, createFineTunedModel, createTrainableNetwork, disposeFineTunedModel, planFineTuning,
  trainableParameterCount,
} from './trainable-network.js';

const head = { featureDim: 800, hidden: [16], classes: 10 };
let fx: LayersFeatureExtractor;

beforeAll(async () => {
  await initBackend();
  fx = featureExtractor(createDefaultBackbone({ seed: 3, classes: 10 }), 'features');
});

describe('planning which backbone layers train', () => {
  test.each([
    [0, [], 'features', [800]],
    [1, ['conv2'], 'conv1', [12, 12, 16]],
    [2, ['conv1', 'conv2'], 'input', [28, 28, 1]],
  ])('%i unfrozen: %j train on the output of %s', (count, unfrozen, boundary, shape) => {
    const plan = planFineTuning(fx, count);
    expect(plan.unfrozen).toEqual(unfrozen);
    expect(plan.boundaryIsInput).toBe(boundary === 'input');
    if (boundary !== 'input') expect(plan.boundary).toBe(boundary);
    expect(plan.boundaryShape).toEqual(shape);
    expect(plan.inputDim).toBe(shape.reduce((a, b) => a * b, 1));
  });

  test('a cut at a dense layer counts the cut itself; asking for more layers than there are names them', () => {
    expect(planFineTuning(fx.at('fc'), 2).unfrozen).toEqual(['conv2', 'fc']);
    expectFtlError(() => planFineTuning(fx, 3), ErrorCode.InvalidConfig, /fineTuning.layers is 3 but the backbone has only 2 layers with weights below the cut "features" \(conv2, conv1\)/);
  });
});

describe('the trainable network and the fine-tuned model', () => {
  test('carry the unfrozen layers\' tensors first, then the head\'s, initialised from the pretrained backbone', () => {
    const net = createTrainableNetwork(fx, 1, head, 7);
    const w = getTrainableWeights(net.model);
    expect(w.specs.map((s) => s.name)).toEqual(['conv2/kernel', 'conv2/bias', 'head_hidden_1/kernel', 'head_hidden_1/bias', 'head_output/kernel', 'head_output/bias']);
    expect(backboneLayersOf(w.specs)).toEqual(['conv2']);
    const conv2 = fx.model.layers.find((l) => l.name === 'conv2')!.getWeights()[0]!.dataSync();
    expect(Array.from(w.values.subarray(0, conv2.length))).toEqual(Array.from(conv2));
    const full = createFineTunedModel(fx, 1, head, 7);
    expect(getTrainableWeights(full)).toEqual(w);
    disposeFineTunedModel(full, fx);
    net.model.dispose();
  });

  test('on cached boundary features the network predicts what the whole model predicts from images; training it leaves the backbone alone', async () => {
    const mnist = loadBuiltinDataset('mnist');
    const data = subset(mnist, Array.from({ length: 64 }, (_, i) => i));
    for (const count of [1, 2]) {
      const net = createTrainableNetwork(fx, count, head, 7);
      const full = createFineTunedModel(fx, count, head, 7);
      const features = await boundaryFeatures(fx, net.plan, data);
      expect(features.length).toBe(64 * net.plan.inputDim);
      const [a, b] = tf.tidy(() => [
        (net.model.predict(tf.tensor2d(features, [64, net.plan.inputDim])) as tf.Tensor).dataSync(),
        (full.predict(tf.tensor4d(data.images, [64, 28, 28, 1])) as tf.Tensor).dataSync(),
      ]);
      for (let i = 0; i < a!.length; i++) expect(a![i]).toBeCloseTo(b![i]!, 4);

      const before = fx.model.getWeights().map((t) => Array.from(t.dataSync()));
      net.model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
      const x = tf.tensor2d(features, [64, net.plan.inputDim]);
      const y = tf.oneHot(tf.tensor1d(data.labels, 'int32'), 10);
      await net.model.fit(x, y, { epochs: 1, batchSize: 32, verbose: 0 });
      tf.dispose([x, y]);
      expect(fx.model.getWeights().map((t) => Array.from(t.dataSync()))).toEqual(before);
      disposeFineTunedModel(full, fx);
      net.model.dispose();
    }
  });
});

describe('trainable network size', () => {
  test.each([0, 1, 2])('trainableParameterCount with %i unfrozen layers is what the built network holds', (count) => {
    const net = createTrainableNetwork(fx, count, head, 0);
    expect(trainableParameterCount(fx, count, head)).toBe(getTrainableWeights(net.model).values.length);
    net.model.dispose();
  });

  test('a network above the limit is refused before any tensor of it exists, by the trainable and the exported model alike', () => {
    const big = { ...head, hidden: [62_500] };
    const count = trainableParameterCount(fx, 2, big);
    expect(count).toBeGreaterThan(headParameterCount(big)); // the unfrozen conv layers count too
    const before = tf.memory();
    const message = new RegExp(`would have ${count.toLocaleString('en-US')} trainable values, above the limit of 50,000,000`);
    expectFtlError(() => createTrainableNetwork(fx, 2, big, 0), ErrorCode.InvalidConfig, message);
    expectFtlError(() => createFineTunedModel(fx, 2, big, 0), ErrorCode.InvalidConfig, message);
    expect([tf.memory().numTensors, tf.memory().numBytes]).toEqual([before.numTensors, before.numBytes]);
  });
});
