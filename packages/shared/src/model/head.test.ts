import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { initBackend } from './backend.js';
import { createDefaultBackbone } from './backbone.js';
import {
  assertModelSize,
  classMeanHead,
  createHead,
  getTrainableWeights,
  headParameterCount,
  MAX_MODEL_PARAMETERS,
  type HeadConfig,
} from './head.js';

beforeAll(async () => {
  await initBackend();
});

describe('head', () => {
  test('dropout and L2 change training, not what travels: the wire carries the same dense tensors', () => {
    const plain = createHead({ featureDim: 8, hidden: [4, 3], classes: 2 }, 1);
    const regular = createHead({ featureDim: 8, hidden: [4, 3], classes: 2, dropout: 0.3, l2: 0.01 }, 1);
    expect(regular.layers.map((l) => l.name).filter((n) => n.startsWith('head_'))).toEqual([
      'head_hidden_1',
      'head_dropout_1',
      'head_hidden_2',
      'head_dropout_2',
      'head_output',
    ]);
    expect(getTrainableWeights(regular).specs).toEqual(getTrainableWeights(plain).specs);
    expect(Array.from(getTrainableWeights(regular).values)).toEqual(Array.from(getTrainableWeights(plain).values));
    expect(regular.layers.flatMap((l) => l.calculateLosses())).toHaveLength(3); // an L2 penalty per dense kernel joins the loss
    expect(plain.layers.flatMap((l) => l.calculateLosses())).toHaveLength(0);
  });

  test('the same seed gives the same initial weights, for every seed including 0 (which tfjs alone treats as unseeded)', () => {
    for (const seed of [0, 1, 7]) {
      const a = getTrainableWeights(createHead({ featureDim: 8, hidden: [4], classes: 3 }, seed)).values;
      const b = getTrainableWeights(createHead({ featureDim: 8, hidden: [4], classes: 3 }, seed)).values;
      expect(Array.from(a)).toEqual(Array.from(b));
      const bb = () =>
        createDefaultBackbone({ seed, classes: 3 })
          .getWeights()
          .map((w) => Array.from(w.dataSync()));
      expect(bb()).toEqual(bb());
    }
    const zero = getTrainableWeights(createHead({ featureDim: 8, hidden: [4], classes: 3 }, 0)).values;
    const one = getTrainableWeights(createHead({ featureDim: 8, hidden: [4], classes: 3 }, 1)).values;
    expect(Array.from(zero)).not.toEqual(Array.from(one));
  });
});

describe('head size', () => {
  test.each<HeadConfig>([
    { featureDim: 8, hidden: [], classes: 2 },
    { featureDim: 8, hidden: [4, 3], classes: 2, dropout: 0.3 },
    { featureDim: 800, hidden: [128], classes: 10 },
  ])('headParameterCount of %j is what the built head holds', (config) => {
    const model = createHead(config, 1);
    expect(headParameterCount(config)).toBe(getTrainableWeights(model).values.length);
    model.dispose();
  });

  test.each<[string, HeadConfig]>([
    ['a hidden layer just over the limit', { featureDim: 800, hidden: [62_500], classes: 10 }],
    ['200,000 hidden units', { featureDim: 800, hidden: [200_000], classes: 10 }],
    ['four million hidden units', { featureDim: 800, hidden: [4_000_000], classes: 10 }],
  ])('a head above the limit is refused before any tensor exists: %s', (_, config) => {
    const before = tf.memory();
    const count = headParameterCount(config).toLocaleString('en-US');
    expectFtlError(
      () => createHead(config, 1),
      ErrorCode.InvalidConfig,
      new RegExp(`^the head would have ${count} trainable values, above the limit of 50,000,000; use fewer or smaller hidden layers`),
    );
    expect([tf.memory().numTensors, tf.memory().numBytes]).toEqual([before.numTensors, before.numBytes]);
  });

  test('the limit itself is allowed, one value more is not', () => {
    expect(() => assertModelSize(MAX_MODEL_PARAMETERS, 'a model')).not.toThrow();
    expectFtlError(
      () => assertModelSize(MAX_MODEL_PARAMETERS + 1, 'a model'),
      ErrorCode.InvalidConfig,
      /^a model would have 50,000,001 trainable values/,
    );
    expectFtlError(() => assertModelSize(Number.NaN, 'a model'), ErrorCode.InvalidConfig, /^a model would have NaN trainable values/);
  });

  test.each([[0], [1.5], [-3], [Number.NaN]])('a hidden size of %d is refused with its place', (units) => {
    expectFtlError(
      () => createHead({ featureDim: 8, hidden: [4, units], classes: 2 }, 1),
      ErrorCode.InvalidConfig,
      /^head hidden\[1\] must be a positive integer/,
    );
  });
});

describe('class-mean head', () => {
  test('predicts the nearest class mean (Euclidean), keeps an absent class and other tensors, and leaves its input unchanged', () => {
    const config: HeadConfig = { featureDim: 3, hidden: [], classes: 3 };
    const model = createHead(config, 5);
    const random = getTrainableWeights(model);
    const means = Float32Array.from([1, 0, 0, 0, 2, 0, 0, 0, 0]);
    const head = classMeanHead(random, means, [4, 6, 0]);
    expect(random.values).toEqual(getTrainableWeights(model).values);
    // Class 2 has no samples: its kernel column and bias keep the random init.
    for (let j = 0; j < 3; j++) expect(head.values[j * 3 + 2]).toBe(random.values[j * 3 + 2]);
    expect(head.values[9 + 2]).toBe(random.values[9 + 2]);
    const logits = (x: number[]) => [0, 1].map((c) => x.reduce((s, v, j) => s + v * head.values[j * 3 + c]!, head.values[9 + c]!));
    for (const x of [
      [0.9, 0.1, 0.3],
      [0.2, 1.6, -1],
      [0.6, 0.8, 0],
      [1.4, 1.5, 2],
    ]) {
      const d = [0, 1].map((c) => x.reduce((s, v, j) => s + (v - means[c * 3 + j]!) ** 2, 0));
      const [l0, l1] = logits(x);
      expect(l0! > l1!).toBe(d[0]! < d[1]!);
    }
    // The margin at a class mean over the other class is the configured one: α·‖μ0 − μ1‖² with α = margin / mean spread.
    const [a, b] = logits([1, 0, 0]);
    expect(a! - b!).toBeCloseTo(4, 4);
    model.dispose();
  });

  test('a head with hidden layers is refused with what to change; sizes that do not fit are refused', () => {
    const hidden = getTrainableWeights(createHead({ featureDim: 3, hidden: [4], classes: 2 }, 1));
    expectFtlError(
      () => classMeanHead(hidden, new Float32Array(6), [1, 1]),
      ErrorCode.InvalidConfig,
      /needs a linear head \(hidden: \[\]\).*headInit/,
    );
    const linear = getTrainableWeights(createHead({ featureDim: 3, hidden: [], classes: 2 }, 1));
    expectFtlError(
      () => classMeanHead(linear, new Float32Array(8), [1, 1]),
      ErrorCode.WeightsMismatch,
      /do not fit a head of 2 classes on 3 features/,
    );
  });
});
