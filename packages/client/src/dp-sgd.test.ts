import * as tf from '@tensorflow/tfjs';
import {
  boundaryFeatures,
  createDefaultBackbone,
  createHead,
  createRng,
  createTrainableNetwork,
  ErrorCode,
  featureExtractor,
  FtlError,
  getTrainableWeights,
  initBackend,
  loadBuiltinDataset,
  RdpAccountant,
  subset,
  type HeadConfig,
  type TrainableNetwork,
  type Weights,
} from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { type DpSgdConfig, DpRandom, PerExampleClipper, privateGradient, variableOf } from './dp-sgd.js';
import { HeadTrainer } from './head-trainer.js';

beforeAll(async () => {
  await initBackend();
});

/** `n` seeded feature vectors (a few large, so some gradients clip) and labels. */
function randomData(n: number, dim: number, classes: number, seed: number): { features: Float32Array; labels: Int32Array } {
  const rng = createRng(seed);
  const features = Float32Array.from({ length: n * dim }, (_, i) => rng.normal() * (i % 5 === 0 ? 3 : 1));
  const labels = Int32Array.from({ length: n }, () => rng.int(classes));
  return { features, labels };
}

const trainedOf = (model: tf.LayersModel) => model.trainableWeights.map(variableOf);

/** The brute-force clipped sum: one `tf.variableGrads` per example, clipped to `clipNorm`, summed. */
function bruteForce(model: tf.LayersModel, trained: tf.Variable[], x: tf.Tensor2D, y: tf.Tensor2D, clipNorm: number) {
  const sums = trained.map((v) => new Float64Array(v.size));
  const norms: number[] = [];
  for (let i = 0; i < x.shape[0]; i++) {
    const g = tf.tidy(() => {
      const { grads } = tf.variableGrads(
        () => tf.metrics.categoricalCrossentropy(y.slice([i, 0], [1, -1]), model.apply(x.slice([i, 0], [1, -1])) as tf.Tensor).sum() as tf.Scalar,
        trained,
      );
      return trained.map((v) => grads[v.name]!.dataSync() as Float32Array);
    });
    const norm = Math.sqrt(g.reduce((s, t) => s + t.reduce((a, v) => a + v * v, 0), 0));
    norms.push(norm);
    const c = Math.min(1, clipNorm / norm);
    g.forEach((t, j) => t.forEach((v, k) => (sums[j]![k]! += c * v)));
  }
  return { sums, norms };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const flat = (ts: tf.Tensor[]) => Float32Array.from(ts.flatMap((t) => Array.from(t.dataSync())));
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

describe('per-example clipping', () => {
  test.each([
    ['a linear head', { featureDim: 7, hidden: [], classes: 3 }],
    ['a head with one hidden layer', { featureDim: 7, hidden: [5], classes: 3 }],
    ['a head with two hidden layers and L2', { featureDim: 6, hidden: [5, 4], classes: 4, l2: 0.01 }],
  ] as Array<[string, HeadConfig]>)('ghost norms give the brute-force clipped sum on %s', (_, config) => {
    const model = createHead(config, 3);
    const { features, labels } = randomData(9, config.featureDim, config.classes, 4);
    const x = tf.tensor2d(features, [9, config.featureDim]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), config.classes) as tf.Tensor2D;
    const trained = trainedOf(model);
    const clipper = PerExampleClipper.for(model, trained);
    expect(clipper.method).toBe('ghost');
    // C at the median norm: about half the examples are clipped, half are not.
    const clipNorm = median(bruteForce(model, trained, x, y, Infinity).norms);
    const want = bruteForce(model, trained, x, y, clipNorm);
    expect(want.norms.filter((n) => n > clipNorm * 1.01).length).toBeGreaterThan(2);
    const got = tf.tidy(() => {
      const r = PerExampleClipper.for(model, trained).clippedSum(x, y, clipNorm);
      return { sums: r.sums.map((s) => s.dataSync() as Float32Array), norms: r.norms.dataSync() as Float32Array };
    });
    expect(maxDiff(got.norms, want.norms)).toBeLessThan(1e-5 * Math.max(...want.norms));
    got.sums.forEach((s, j) => expect(maxDiff(s, want.sums[j]!), trained[j]!.name).toBeLessThan(1e-5));
    tf.dispose([x, y]);
    model.dispose();
  });

  test('without clipping the ghost sum is the batch gradient of the summed loss, dropout included', () => {
    const config: HeadConfig = { featureDim: 8, hidden: [6], classes: 3, dropout: 0.5 };
    const model = createHead(config, 5);
    const { features, labels } = randomData(10, 8, 3, 6);
    const x = tf.tensor2d(features, [10, 8]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 3) as tf.Tensor2D;
    const trained = trainedOf(model);
    const clipper = PerExampleClipper.for(model, trained);
    expect(clipper.method).toBe('ghost');
    // A seeded dropout layer draws the same mask for a batch of the same shape, so both see one mask.
    const want = tf.tidy(() => {
      const { grads } = tf.variableGrads(
        () => tf.metrics.categoricalCrossentropy(y, model.apply(x, { training: true }) as tf.Tensor).sum() as tf.Scalar,
        trained,
      );
      return flat(trained.map((v) => grads[v.name]!));
    });
    const got = tf.tidy(() => flat(clipper.clippedSum(x, y, 1e9).sums));
    expect(maxDiff(got, want)).toBeLessThan(1e-5);
    tf.dispose([x, y]);
    model.dispose();
  });

  test('convolutions take the per-example path, and a frozen convolution below the head still takes ghost norms', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.reshape({ targetShape: [3, 3, 2], inputShape: [18] }),
        tf.layers.conv2d({ filters: 2, kernelSize: 2, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 4, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
      ],
    });
    const { features, labels } = randomData(7, 18, 3, 8);
    const x = tf.tensor2d(features, [7, 18]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 3) as tf.Tensor2D;
    const all = trainedOf(model);
    const headOnly = model.layers
      .slice(3)
      .flatMap((l) => l.trainableWeights)
      .map(variableOf);
    for (const [trained, method] of [
      [all, 'per-example'],
      [headOnly, 'ghost'],
    ] as const) {
      const clipper = PerExampleClipper.for(model, trained);
      expect(clipper.method).toBe(method);
      const clipNorm = median(bruteForce(model, trained, x, y, Infinity).norms);
      const want = bruteForce(model, trained, x, y, clipNorm);
      const got = tf.tidy(() => flat(clipper.clippedSum(x, y, clipNorm).sums));
      expect(maxDiff(got, Float32Array.from(want.sums.flatMap((s) => Array.from(s))))).toBeLessThan(1e-5);
    }
    tf.dispose([x, y]);
    model.dispose();
  });

  test('an outlier with a huge gradient moves the clipped sum by at most C', () => {
    const config: HeadConfig = { featureDim: 10, hidden: [], classes: 4 };
    const model = createHead(config, 9);
    const { features, labels } = randomData(9, 10, 4, 10);
    // The outlier: a feature vector of norm 1000 that the kernel maps to 0, so its logits are the bias and
    // its probabilities stay far from saturation (where the clipped cross-entropy has no gradient), while
    // its kernel gradient, aᵢ·δᵢᵀ, is about 1000 times the others'.
    const kernel = model.getWeights()[0]!.arraySync() as number[][];
    const outlier = orthogonalTo(
      Array.from({ length: 4 }, (_, c) => kernel.map((row) => row[c]!)),
      Array.from({ length: 10 }, (_, j) => Math.cos(j + 1)),
    );
    const scale = 1000 / Math.hypot(...outlier);
    outlier.forEach((v, j) => (features[8 * 10 + j] = v * scale));
    const trained = trainedOf(model);
    const clipper = PerExampleClipper.for(model, trained);
    const clipNorm = 0.5;
    const [withIt, without, norms] = tf.tidy(() => {
      const x = tf.tensor2d(features, [9, 10]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 4) as tf.Tensor2D;
      const all = clipper.clippedSum(x, y, clipNorm);
      const rest = clipper.clippedSum(x.slice([0, 0], [8, -1]), y.slice([0, 0], [8, -1]), clipNorm);
      return [flat(all.sums), flat(rest.sums), all.norms.dataSync()];
    });
    expect(norms[8]!).toBeGreaterThan(200 * clipNorm);
    const influence = Math.sqrt(withIt.reduce((s, v, i) => s + (v - without[i]!) ** 2, 0));
    expect(influence).toBeLessThanOrEqual(clipNorm * (1 + 1e-5));
    expect(influence).toBeGreaterThan(clipNorm * 0.99); // clipped to C, not dropped
    model.dispose();
  });
});

/** `v` less its projection on the span of `columns` (Gram–Schmidt). */
function orthogonalTo(columns: number[][], v: number[]): number[] {
  const basis: number[][] = [];
  const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
  const less = (a: number[]) => basis.reduce((r, e) => r.map((x, i) => x - dot(r, e) * e[i]!), a);
  for (const c of columns) {
    const r = less(c);
    const norm = Math.hypot(...r);
    basis.push(r.map((x) => x / norm));
  }
  return less(v);
}

describe('noise and sampling', () => {
  test('the Gaussian noise has the stated standard deviation, and its tails', () => {
    const out = DpRandom.seeded(7).gaussian(new Float32Array(200_001), 2.5);
    const n = out.length;
    const mean = out.reduce((s, v) => s + v, 0) / n;
    const std = Math.sqrt(out.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(std / 2.5).toBeGreaterThan(0.99);
    expect(std / 2.5).toBeLessThan(1.01);
    // P(|z| > 2) = 4.55 %: a normal, not merely a variance of 1.
    const beyond = out.filter((v) => Math.abs(v) > 5).length / n;
    expect(beyond).toBeGreaterThan(0.043);
    expect(beyond).toBeLessThan(0.048);
  });

  test("a DP step's gradient carries noise of standard deviation σC / (q·n) on every coordinate", () => {
    const config: HeadConfig = { featureDim: 100, hidden: [64], classes: 10 };
    const model = createHead(config, 2);
    const { features, labels } = randomData(16, 100, 10, 3);
    const trained = trainedOf(model);
    const clipper = PerExampleClipper.for(model, trained);
    const step = { clipNorm: 0.7, noiseMultiplier: 1.3, expectedBatchSize: 20 };
    const noise = tf.tidy(() => {
      const x = tf.tensor2d(features, [16, 100]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10) as tf.Tensor2D;
      const noisy = flat(privateGradient(clipper, x, y, step, DpRandom.seeded(11)).grads);
      const clean = flat(privateGradient(clipper, x, y, { ...step, noiseMultiplier: 0 }, DpRandom.seeded(11)).grads);
      return noisy.map((v, i) => v - clean[i]!);
    });
    expect(noise.length).toBe(100 * 64 + 64 + 64 * 10 + 10);
    const std = Math.sqrt(noise.reduce((s, v) => s + v * v, 0) / noise.length);
    const stated = (step.noiseMultiplier * step.clipNorm) / step.expectedBatchSize;
    expect(std / stated).toBeGreaterThan(0.97);
    expect(std / stated).toBeLessThan(1.03);
    model.dispose();
  });

  test('Poisson batches hold q·n examples on average, with the binomial spread', () => {
    const random = DpRandom.seeded(5);
    const sizes = Array.from({ length: 500 }, () => random.poisson(1000, 0.05).length);
    const mean = sizes.reduce((s, v) => s + v, 0) / sizes.length;
    const variance = sizes.reduce((s, v) => s + (v - mean) ** 2, 0) / (sizes.length - 1);
    expect(mean).toBeGreaterThan(48.5);
    expect(mean).toBeLessThan(51.5);
    expect(variance / (1000 * 0.05 * 0.95)).toBeGreaterThan(0.8);
    expect(variance / (1000 * 0.05 * 0.95)).toBeLessThan(1.2);
    // A fresh draw each time, sorted and without repeats.
    const [a, b] = [random.poisson(1000, 0.05), random.poisson(1000, 0.05)];
    expect(Array.from(a)).not.toEqual(Array.from(b));
    expect(a.every((v, i) => i === 0 || v > a[i - 1]!)).toBe(true);
  });
});

describe('DP-SGD in the head trainer', () => {
  const head: HeadConfig = { featureDim: 12, hidden: [8], classes: 3, l2: 0.01 };
  const n = 40;
  let data: ConstructorParameters<typeof HeadTrainer>[1];
  beforeAll(() => {
    const train = randomData(n, 12, 3, 21);
    const val = randomData(10, 12, 3, 22);
    data = { trainFeatures: train.features, trainLabels: train.labels, valFeatures: val.features, valLabels: val.labels };
  });
  const fitConfig = { epochs: 3, batchSize: 10, learningRate: 0.01, seed: 5 };
  const dp: DpSgdConfig = { noiseMultiplier: 1, clipNorm: 1, sampling: 'poisson', seed: 3 };
  const start = () => getTrainableWeights(createHead(head, 1));

  test.each([
    ['poisson', [], 0],
    ['shuffle', [], 0.1],
    ['shuffle', ['head_output'], 0],
  ] as Array<[DpSgdConfig['sampling'], string[], number]>)(
    'with σ = 0 and C huge, DP-SGD (%s, local layers %j, FedProx μ = %d) steps exactly as Adam on the mean gradient',
    async (sampling, localLayers, proximalMu) => {
      // One batch of every example (q = 1): the clipped sum divided by n is the mean gradient, and L2 and
      // FedProx join it outside the clipping, as they join the plain trainer's loss.
      const config = { ...fitConfig, batchSize: n, proximalMu };
      const weights = getTrainableWeights(createHead(head, 1), localLayers);
      const plain = new HeadTrainer(head, data, localLayers);
      const want = await plain.fit(weights, config);
      plain.dispose();
      const trainer = new HeadTrainer(head, data, localLayers);
      const got = await trainer.fit(weights, { ...config, dp: { noiseMultiplier: 0, clipNorm: 1e9, sampling, seed: 1 } });
      trainer.dispose();
      expect(maxDiff(want.weights.values, weights.values)).toBeGreaterThan(1e-3); // it trained
      expect(maxDiff(got.weights.values, want.weights.values)).toBeLessThan(1e-5);
      expect(got.metrics.loss).toBeCloseTo(want.metrics.loss, 5);
      expect(got.privacy).toEqual({
        noiseMultiplier: 0,
        sampleRate: 1,
        steps: 3,
        clipNorm: 1e9,
        sampling,
        expectedBatchSize: n,
        stepsPerEpoch: 1,
      });
    },
  );

  test('reports what an accountant needs, and the same seed repeats exactly while another does not', async () => {
    const trainer = new HeadTrainer(head, data);
    const a = await trainer.fit(start(), { ...fitConfig, dp });
    const b = await trainer.fit(start(), { ...fitConfig, dp });
    const c = await trainer.fit(start(), { ...fitConfig, dp: { ...dp, seed: 4 } });
    const secret = [await trainer.fit(start(), { ...fitConfig, dp: { ...dp, seed: undefined } })];
    secret.push(await trainer.fit(start(), { ...fitConfig, dp: { ...dp, seed: undefined } }));
    trainer.dispose();
    expect(Array.from(b.weights.values)).toEqual(Array.from(a.weights.values));
    expect(maxDiff(c.weights.values, a.weights.values)).toBeGreaterThan(1e-4);
    expect(maxDiff(secret[0]!.weights.values, secret[1]!.weights.values)).toBeGreaterThan(1e-4);
    expect(Number.isFinite(a.metrics.loss)).toBe(true);
    expect(a.privacy).toEqual({
      noiseMultiplier: 1,
      sampleRate: 0.25,
      steps: 12,
      clipNorm: 1,
      sampling: 'poisson',
      expectedBatchSize: 10,
      stepsPerEpoch: 4,
    });
    const accountant = new RdpAccountant().step(a.privacy!);
    expect(accountant.ledger).toEqual([{ noiseMultiplier: 1, sampleRate: 0.25, steps: 12 }]);
    expect(accountant.epsilon(1e-5).epsilon).toBeGreaterThan(0);
  });

  test('trains privately through unfrozen backbone layers (conv2 per example), and learns', async () => {
    const mnist = loadBuiltinDataset('mnist');
    const images = subset(
      mnist,
      Array.from({ length: 96 }, (_, i) => i * 17),
    );
    const cnn: HeadConfig = { featureDim: 800, hidden: [16], classes: 10 };
    const fx = featureExtractor(createDefaultBackbone({ seed: 11, classes: 10 }), 'features');
    const net = createTrainableNetwork(fx, 1, cnn, 0);
    const features = await boundaryFeatures(fx, net.plan, images);
    const global = getTrainableWeights(createTrainableNetwork(fx, 1, cnn, 1).model);
    const trainer = new HeadTrainer(
      cnn,
      { trainFeatures: features, trainLabels: images.labels, valFeatures: features, valLabels: images.labels },
      [],
      net,
    );
    const clipper = PerExampleClipper.for(net.model, net.model.trainableWeights.map(variableOf));
    expect(clipper.method).toBe('per-example');
    const before = trainer.evaluate(global).accuracy;
    const { weights, privacy } = await trainer.fit(global, {
      epochs: 3,
      batchSize: 16,
      learningRate: 0.003,
      seed: 1,
      dp: { noiseMultiplier: 0.3, clipNorm: 5, sampling: 'shuffle', seed: 2 },
    });
    expect(weights.specs[0]!.name).toBe('conv2/kernel');
    expect(maxDiff(weights.values.subarray(0, 400), global.values.subarray(0, 400))).toBeGreaterThan(1e-4);
    expect(trainer.evaluate(weights).accuracy).toBeGreaterThan(before + 0.2);
    expect(privacy).toMatchObject({ steps: 18, sampleRate: 16 / 96 });
    trainer.dispose();
  });

  test('a Poisson step that holds no example still adds its noise and counts as a step', async () => {
    // q = 1/40 over 40 steps: about a third of the steps sample nobody.
    const trainer = new HeadTrainer(head, data);
    const { weights, metrics, privacy } = await trainer.fit(start(), { ...fitConfig, epochs: 2, batchSize: 1, dp });
    trainer.dispose();
    expect(privacy).toMatchObject({ steps: 80, sampleRate: 1 / 40, expectedBatchSize: 1 });
    expect(Number.isFinite(metrics.loss)).toBe(true);
    expect(weights.values.every(Number.isFinite)).toBe(true);
  });

  const refusals: Array<[string, Partial<DpSgdConfig> | Record<string, unknown>, RegExp]> = [
    ['a negative noise multiplier', { noiseMultiplier: -1 }, /^dp\.noiseMultiplier must be a finite number ≥ 0 \(got -1\)/],
    ['a clipping norm of 0', { clipNorm: 0 }, /^dp\.clipNorm must be a finite number > 0 \(got 0\)/],
    ['an infinite clipping norm', { clipNorm: Infinity }, /^dp\.clipNorm must be a finite number > 0 \(got Infinity\)/],
    ['an unknown sampling', { sampling: 'uniform' }, /^dp\.sampling must be "poisson" or "shuffle" \(got "uniform"\)$/],
    ['a fractional seed', { seed: 1.5 }, /^dp\.seed must be an integer \(got 1\.5\)/],
  ];
  test.each(refusals)('refuses %s in one line, before training', async (_, change, message) => {
    const trainer = new HeadTrainer(head, data);
    const err = await trainer.fit(start(), { ...fitConfig, dp: { ...dp, ...change } as DpSgdConfig }).catch((e: unknown) => e);
    trainer.dispose();
    expect(err).toBeInstanceOf(FtlError);
    expect((err as FtlError).code).toBe(ErrorCode.InvalidConfig);
    expect((err as FtlError).message).toMatch(message);
    expect((err as FtlError).message).not.toContain('\n');
  });

  /** A trainer on a custom network over the 12 features (its "backbone" layer named `body`, trained). */
  const customTrainer = (layers: tf.layers.Layer[]): { trainer: HeadTrainer; weights: Weights } => {
    const model = tf.sequential({ layers });
    const network: TrainableNetwork = {
      plan: { cut: 'body', unfrozen: ['body'], boundary: 'input', boundaryIsInput: true, boundaryShape: [12], inputDim: 12 },
      model,
    };
    return { trainer: new HeadTrainer(head, data, [], network), weights: getTrainableWeights(model) };
  };
  test.each([
    [
      'a batch normalisation that uses batch statistics',
      () => [
        tf.layers.batchNormalization({ name: 'body', inputShape: [12] }),
        tf.layers.dense({ name: 'head_output', units: 3, activation: 'softmax' }),
      ],
      /^DP-SGD cannot train with layer "body" \(BatchNormalization with batch statistics mixes examples/,
    ],
    [
      'a model without softmax probabilities',
      () => [tf.layers.dense({ name: 'body', units: 4, inputShape: [12] }), tf.layers.dense({ name: 'head_output', units: 3 })],
      /^DP-SGD needs a model that ends in softmax probabilities .* but "head_output" does not$/,
    ],
  ] as Array<[string, () => tf.layers.Layer[], RegExp]>)('refuses %s in one line, before the weights change', async (_, layers, message) => {
    const { trainer, weights } = customTrainer(layers());
    const err = await trainer.fit(weights, { ...fitConfig, dp }).catch((e: unknown) => e);
    trainer.dispose();
    expect(err).toBeInstanceOf(FtlError);
    expect((err as FtlError).message).toMatch(message);
    expect((err as FtlError).message).not.toContain('\n');
  });
});
