import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { batchNormEncoder } from '../../test-support/batch-norm-encoder.js';
import { loadBuiltinDataset } from '../data/builtin.js';
import { tensorsByName } from '../codec/weights.js';
import { subset } from '../data/dataset.js';
// The network builders as the package exports them, with the backbone and head they build on.
import {
  ALL_BACKBONE_LAYERS,
  backboneLayersOf,
  boundaryFeatures,
  createDefaultBackbone,
  createFineTunedModel,
  createHead,
  createTrainableNetwork,
  disposeFineTunedModel,
  extractFeatures,
  featureExtractor,
  getTrainableWeights,
  headParameterCount,
  initBackend,
  planFineTuning,
  trainableParameterCount,
  type LayersFeatureExtractor,
} from '../ml.js';

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
    expectFtlError(
      () => planFineTuning(fx, 3),
      ErrorCode.InvalidConfig,
      /fineTuning.layers is 3 but the backbone has only 2 layers with weights below the cut "features" \(conv2, conv1\)/,
    );
  });
});

describe('the trainable network and the fine-tuned model', () => {
  test("carry the unfrozen layers' tensors first, then the head's, initialised from the pretrained backbone", () => {
    const net = createTrainableNetwork(fx, 1, head, 7);
    const w = getTrainableWeights(net.model);
    expect(w.specs.map((s) => s.name)).toEqual([
      'conv2/kernel',
      'conv2/bias',
      'head_hidden_1/kernel',
      'head_hidden_1/bias',
      'head_output/kernel',
      'head_output/bias',
    ]);
    expect(backboneLayersOf(w.specs)).toEqual(['conv2']);
    const conv2 = fx.model.layers
      .find((l) => l.name === 'conv2')!
      .getWeights()[0]!
      .dataSync();
    expect(Array.from(w.values.subarray(0, conv2.length))).toEqual(Array.from(conv2));
    const full = createFineTunedModel(fx, 1, head, 7);
    expect(getTrainableWeights(full)).toEqual(w);
    disposeFineTunedModel(full, fx);
    net.model.dispose();
  });

  test('on cached boundary features the network predicts what the whole model predicts from images; training it leaves the backbone alone', async () => {
    const mnist = loadBuiltinDataset('mnist');
    const data = subset(
      mnist,
      Array.from({ length: 64 }, (_, i) => i),
    );
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

describe('the from-scratch network', () => {
  const valuesOf = tensorsByName;

  test('every backbone layer below the cut trains, on the images themselves', () => {
    const plan = planFineTuning(fx, ALL_BACKBONE_LAYERS);
    expect(plan).toMatchObject({ unfrozen: ['conv1', 'conv2'], boundaryIsInput: true, boundaryShape: [28, 28, 1], inputDim: 784 });
    expect(planFineTuning(fx.at('fc'), ALL_BACKBONE_LAYERS).unfrozen).toEqual(['conv1', 'conv2', 'fc']);
  });

  test("has the transfer network's tensors and shapes but none of the pretrained backbone values; its head is the transfer head; a seed gives the same values twice", () => {
    // A stand-in for a pretrained backbone: every value moved off its initialiser's (biases off zero).
    const backbone = createDefaultBackbone({ seed: 3, classes: 10 });
    backbone.setWeights(backbone.getWeights().map((t) => t.add(0.5)));
    const fx = featureExtractor(backbone, 'features');
    const transfer = createTrainableNetwork(fx, ALL_BACKBONE_LAYERS, head, 7);
    const random = createTrainableNetwork(fx, ALL_BACKBONE_LAYERS, head, 7, { backbone: 'random' });
    const again = createTrainableNetwork(fx, ALL_BACKBONE_LAYERS, head, 7, { backbone: 'random' });
    const other = createTrainableNetwork(fx, ALL_BACKBONE_LAYERS, head, 8, { backbone: 'random' });
    const [t, r, a, o] = [transfer, random, again, other].map((n) => getTrainableWeights(n.model));
    expect(r!.specs).toEqual(t!.specs);
    expect(r!.specs.map((s) => s.name).slice(0, 4)).toEqual(['conv1/kernel', 'conv1/bias', 'conv2/kernel', 'conv2/bias']);
    expect(Array.from(a!.values)).toEqual(Array.from(r!.values));

    const pretrained = valuesOf(t!);
    const fresh = valuesOf(r!);
    const reseeded = valuesOf(o!);
    for (const name of ['conv1/kernel', 'conv2/kernel']) {
      const p = pretrained.get(name)!;
      const v = fresh.get(name)!;
      // Not one value of the pretrained kernel is where it was; the layers' own initialisers drew them.
      expect(v.some((x, i) => x === p[i])).toBe(false);
      expect(v.some((x, i) => x === reseeded.get(name)![i])).toBe(false);
    }
    for (const name of ['conv1/bias', 'conv2/bias']) {
      expect(pretrained.get(name)!.some((x) => x !== 0)).toBe(true);
      expect(Array.from(fresh.get(name)!).every((x) => x === 0)).toBe(true); // the conv layers' bias initialiser: zeros
    }
    for (const name of ['head_hidden_1/kernel', 'head_output/kernel'])
      expect(Array.from(fresh.get(name)!)).toEqual(Array.from(pretrained.get(name)!));
    // The backbone itself is untouched.
    const conv1 = fx.model.layers
      .find((l) => l.name === 'conv1')!
      .getWeights()[0]!
      .dataSync();
    expect(Array.from(conv1)).toEqual(Array.from(pretrained.get('conv1/kernel')!));
    for (const n of [transfer, random, again, other]) n.model.dispose();
    fx.dispose();
  });

  test('the whole model from images holds the same tensors as the network, so an export can write them in', () => {
    const net = createTrainableNetwork(fx, ALL_BACKBONE_LAYERS, head, 7, { backbone: 'random' });
    const full = createFineTunedModel(fx, ALL_BACKBONE_LAYERS, head, 7, { backbone: 'random' });
    expect(getTrainableWeights(full)).toEqual(getTrainableWeights(net.model));
    disposeFineTunedModel(full, fx);
    net.model.dispose();
  });

  test('a backbone with no weights below the cut has nothing to train from scratch', () => {
    const input = tf.input({ shape: [4, 4, 1], name: 'in' });
    const model = tf.model({ inputs: input, outputs: tf.layers.flatten({ name: 'flat' }).apply(input) as tf.SymbolicTensor });
    const bare = featureExtractor(model, 'flat');
    expectFtlError(
      () => planFineTuning(bare, ALL_BACKBONE_LAYERS),
      ErrorCode.InvalidConfig,
      /no layers with weights below the cut "flat", so there is nothing to train from scratch; cut higher \(featureLayer\)/,
    );
  });
});

describe('batch normalisation among the trained layers', () => {
  const bnHead = { featureDim: 8, hidden: [], classes: 3 };

  /** An encoder like the transfer backbones (conv without bias → batch norm → ReLU, twice, global pooling) with stand-in pretrained statistics. */
  function bnBackbone(options: { center?: boolean } = {}): LayersFeatureExtractor {
    const model = batchNormEncoder({ filters: [4, 8], seed: 11, center: options.center });
    for (const [i, layer] of ['bn1', 'bn2'].entries()) {
      const bn = model.getLayer(layer);
      // Far from the initial γ = 1, β = 0, μ = 0, σ² = 1, as after pretraining.
      bn.setWeights(
        bn
          .getWeights()
          .map((t, j) =>
            tf.randomUniform(
              t.shape,
              [0.5, -0.5, -1, 0.5][j + (options.center === false && j > 0 ? 1 : 0)]!,
              [1.5, 0.5, 1, 2][j + (options.center === false && j > 0 ? 1 : 0)]!,
              'float32',
              20 + 4 * i + j,
            ),
          ),
      );
    }
    return featureExtractor(model, 'features');
  }

  const data = () =>
    subset(
      loadBuiltinDataset('mnist'),
      Array.from({ length: 32 }, (_, i) => i),
    );
  const values = (layer: tf.layers.Layer) => layer.getWeights().map((t) => Array.from(t.dataSync()));

  test('trained copies compute what the pretrained layers compute: their statistics are folded into their scale and offset', async () => {
    const fx = bnBackbone();
    const images = data();
    const features = await extractFeatures(fx, images);
    const full = createFineTunedModel(fx, ALL_BACKBONE_LAYERS, bnHead, 5);
    const head = createHead(bnHead, 5);
    const [a, b] = tf.tidy(() => [
      (full.predict(tf.tensor4d(images.images, [32, 28, 28, 1])) as tf.Tensor).dataSync(),
      (head.predict(tf.tensor2d(features, [32, 8])) as tf.Tensor).dataSync(),
    ]);
    for (let i = 0; i < a!.length; i++) expect(a![i]).toBeCloseTo(b![i]!, 4);
    disposeFineTunedModel(full, fx);
    head.dispose();
    fx.dispose();
  });

  test('training moves the scale and offset, which travel; the statistics are constants that never change and never travel', async () => {
    const fx = bnBackbone();
    const images = data();
    const before = values(fx.model.getLayer('bn2'));
    const net = createTrainableNetwork(fx, 2, bnHead, 5);
    expect(getTrainableWeights(net.model).specs.map((s) => s.name)).toEqual([
      'conv2/kernel',
      'bn2/gamma',
      'bn2/beta',
      'head_output/kernel',
      'head_output/bias',
    ]);
    const bn = net.model.getLayer('bn2');
    const start = values(bn);
    expect(start.slice(2)).toEqual([Array(8).fill(0), Array(8).fill(1)]);
    const x = tf.tensor2d(await boundaryFeatures(fx, net.plan, images), [32, net.plan.inputDim]);
    const y = tf.oneHot(
      tf.tensor1d(
        images.labels.map((l) => l % 3),
        'int32',
      ),
      3,
    );
    net.model.compile({ optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy' });
    await net.model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 }); // training mode, as the clients train
    tf.dispose([x, y]);
    const after = values(bn);
    expect(after[0]).not.toEqual(start[0]);
    expect(after[1]).not.toEqual(start[1]);
    expect(after.slice(2)).toEqual(start.slice(2));
    expect(values(fx.model.getLayer('bn2'))).toEqual(before);
    net.model.dispose();
    fx.dispose();
  });

  test('from scratch a batch norm starts as the identity: γ 1, β 0, statistics 0 and 1', () => {
    const fx = bnBackbone();
    const net = createTrainableNetwork(fx, ALL_BACKBONE_LAYERS, bnHead, 5, { backbone: 'random' });
    for (const layer of ['bn1', 'bn2']) {
      const [gamma, beta, mean, variance] = values(net.model.getLayer(layer));
      expect([gamma, beta, mean, variance].map((v) => [...new Set(v)])).toEqual([[1], [0], [0], [1]]);
    }
    net.model.dispose();
    fx.dispose();
  });

  test.each([1, 2, ALL_BACKBONE_LAYERS])(
    'trainableParameterCount with %s layers counts scale and offset, not the statistics, as the built network holds',
    (count) => {
      const fx = bnBackbone();
      for (const backbone of ['pretrained', 'random'] as const) {
        const net = createTrainableNetwork(fx, count, bnHead, 5, { backbone });
        expect(trainableParameterCount(fx, count, bnHead)).toBe(getTrainableWeights(net.model).values.length);
        net.model.dispose();
      }
      fx.dispose();
    },
  );

  test('a batch norm without an offset cannot hold its folded statistics and is refused, saying what to do', () => {
    const fx = bnBackbone({ center: false });
    expectFtlError(
      () => createTrainableNetwork(fx, 2, bnHead, 5),
      ErrorCode.InvalidConfig,
      /backbone layer "bn2" is a batch normalisation without center, whose statistics cannot be folded into it/,
    );
    fx.dispose();
  });
});

describe('trainable network size', () => {
  test.each([0, 1, 2, ALL_BACKBONE_LAYERS])('trainableParameterCount with %s unfrozen layers is what the built network holds', (count) => {
    const net = createTrainableNetwork(fx, count, head, 0, { backbone: 'random' });
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
