import * as tf from '@tensorflow/tfjs';
import {
  boundaryFeatures,
  createDefaultBackbone,
  createHead,
  createTrainableNetwork,
  extractFeatures,
  featureExtractor,
  getTrainableWeights,
  initBackend,
  createRng,
  loadBuiltinDataset,
  shapeSize,
  shuffleInPlace,
  subset,
  type HeadConfig,
  type ImageDataset,
  type LayersFeatureExtractor,
  type Weights,
} from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { HeadTrainer } from './head-trainer.js';

// Raw MNIST pixels stand in for backbone features: real data, no backbone needed.
const config: HeadConfig = { featureDim: 784, hidden: [32], classes: 10 };
let data: ConstructorParameters<typeof HeadTrainer>[1];
let images: { train: ImageDataset; val: ImageDataset };

beforeAll(async () => {
  await initBackend();
  const mnist = loadBuiltinDataset('mnist');
  const train = subset(
    mnist,
    Array.from({ length: 400 }, (_, i) => i * 23),
  );
  const val = subset(
    mnist,
    Array.from({ length: 200 }, (_, i) => i * 23 + 11),
  );
  data = { trainFeatures: train.images, trainLabels: train.labels, valFeatures: val.images, valLabels: val.labels };
  images = { train, val };
});

const distance = (a: Weights, b: Weights) => Math.sqrt(a.values.reduce((s, v, i) => s + (v - b.values[i]!) ** 2, 0));
const fitConfig = { epochs: 3, batchSize: 32, learningRate: 0.01, seed: 5 };

/**
 * Counts the event loop's turns: an immediate that re-arms itself runs once per turn, and only when the
 * running code lets the loop go round. `turns()` reads the count so far; `stop()` ends it.
 */
function countTurns(): { turns: () => number; stop: () => void } {
  let turns = 0;
  let handle = setImmediate(function tick() {
    turns++;
    handle = setImmediate(tick);
  });
  return { turns: () => turns, stop: () => clearImmediate(handle) };
}

describe('local head training', () => {
  test('gives the event loop turns while it trains, so a connected client keeps answering pings', async () => {
    // Yielding after every batch (interval 0) makes the count exact whatever the machine's speed: a
    // trainer that never yields lets no turn happen until it returns.
    const trainer = new HeadTrainer(config, data, [], undefined, { yieldEveryMs: 0 });
    const start = getTrainableWeights(createHead(config, 1));
    const batches = 2 * Math.ceil(data.trainLabels.length / fitConfig.batchSize);
    const counter = countTurns();
    const before = counter.turns();
    await trainer.fit(start, { ...fitConfig, epochs: 2 });
    const turns = counter.turns() - before;
    counter.stop();
    trainer.dispose();
    expect(turns).toBeGreaterThanOrEqual(batches);
  });

  test('feature extraction gives the event loop turns too', async () => {
    const backbone = createDefaultBackbone({ seed: 1, classes: 10 });
    const digits = subset(
      loadBuiltinDataset('mnist'),
      Array.from({ length: 128 }, (_, i) => i),
    );
    // Each batch is made to last over the extractor's 50 ms yield interval (the progress callback holds the
    // thread, as a slow batch on a large backbone would), so it must yield after every batch.
    const counter = countTurns();
    const turnsAtBatch: number[] = [];
    await extractFeatures(featureExtractor(backbone, 'features'), digits, {
      batchSize: 16,
      onProgress: () => {
        turnsAtBatch.push(counter.turns());
        const t = performance.now();
        while (performance.now() - t < 51); // hold the thread, as a slow batch would
      },
    });
    counter.stop();
    backbone.dispose();
    expect(turnsAtBatch).toHaveLength(8);
    // Between every two batches the loop went round at least once.
    for (let b = 1; b < turnsAtBatch.length; b++) expect(turnsAtBatch[b]!, `turns before batch ${b + 1}`).toBeGreaterThan(turnsAtBatch[b - 1]!);
  });

  test('trains exactly as tfjs model.fit would on the same shuffled epochs: same weights, same loss', async () => {
    const start = createHead(config, 1);
    const initial = getTrainableWeights(start);
    const trainer = new HeadTrainer(config, data);
    const ours = await trainer.fit(initial, fitConfig);
    trainer.dispose();
    // Reference: tfjs's own loop over the epochs as the trainer shuffles them (the trainer's seeded order).
    start.compile({ optimizer: tf.train.adam(fitConfig.learningRate), loss: 'categoricalCrossentropy' });
    const x = tf.tensor2d(data.trainFeatures, [data.trainLabels.length, config.featureDim]);
    const y = tf.oneHot(tf.tensor1d(data.trainLabels, 'int32'), 10);
    const order = Int32Array.from({ length: data.trainLabels.length }, (_, i) => i);
    const rng = createRng(fitConfig.seed);
    let loss = NaN;
    for (let e = 0; e < fitConfig.epochs; e++) {
      shuffleInPlace(order, rng);
      const idx = tf.tensor1d(order, 'int32');
      const [xe, ye] = [tf.gather(x, idx), tf.gather(y, idx)];
      loss = Number((await start.fit(xe, ye, { epochs: 1, batchSize: fitConfig.batchSize, shuffle: false, verbose: 0 })).history['loss']![0]);
      tf.dispose([idx, xe, ye]);
    }
    tf.dispose([x, y]);
    const theirs = getTrainableWeights(start).values;
    start.dispose();
    expect(distance(ours.weights, initial)).toBeGreaterThan(0.1); // it trained
    const worst = ours.weights.values.reduce((m, v, i) => Math.max(m, Math.abs(v - theirs[i]!)), 0);
    expect(worst).toBeLessThan(1e-4);
    expect(ours.metrics.loss).toBeCloseTo(loss, 4);
  });

  test('the FedProx term keeps the local model closer to the global one, the stronger μ the closer', async () => {
    const global = getTrainableWeights(createHead(config, 1));
    const drift = async (mu: number) => {
      const trainer = new HeadTrainer(config, data);
      const { weights, metrics } = await trainer.fit(global, { ...fitConfig, proximalMu: mu });
      trainer.dispose();
      expect(Number.isFinite(metrics.loss)).toBe(true);
      return { d: distance(weights, global), accuracy: metrics.accuracy };
    };
    const plain = await drift(0);
    const weak = await drift(0.01);
    const strong = await drift(10);
    expect(plain.accuracy).toBeGreaterThan(0.6);
    expect(weak.accuracy).toBeGreaterThan(0.6); // the custom FedProx loop learns too
    expect(strong.d).toBeLessThan(weak.d * 0.7);
  });

  test('the FedProx term pulls towards the global weights in every epoch, so more epochs under a strong μ do not drift further', async () => {
    const global = getTrainableWeights(createHead(config, 1));
    const drift = async (epochs: number) => {
      const trainer = new HeadTrainer(config, data);
      const { weights } = await trainer.fit(global, { ...fitConfig, learningRate: 0.001, epochs, proximalMu: 100 });
      trainer.dispose();
      return distance(weights, global);
    };
    const one = await drift(1);
    const six = await drift(6);
    expect(one).toBeGreaterThan(0);
    // Anchored at the start of each epoch instead, every epoch would add about one epoch's drift (six ≈ 6 × one).
    expect(six).toBeLessThan(2 * one);
  });

  test('local layers never leave the client and carry their training into the next round', async () => {
    const shared = getTrainableWeights(createHead(config, 1), ['head_output']);
    const local = new HeadTrainer(config, data, ['head_output']);
    const r1 = await local.fit(shared, fitConfig);
    expect(r1.weights.specs.map((s) => s.name)).toEqual(['head_hidden_1/kernel', 'head_hidden_1/bias']);
    // Same global weights and seed again: only the remembered local output layer can change the result.
    const r2 = await local.fit(shared, fitConfig);
    expect(distance(r1.weights, r2.weights)).toBeGreaterThan(1e-3);
    expect(r2.metrics.accuracy).toBeGreaterThan(0.6);
    local.dispose();
    // Without local layers every tensor is reset from the global weights, and the rounds repeat exactly.
    const full = getTrainableWeights(createHead(config, 1));
    const plain = new HeadTrainer(config, data);
    const p1 = await plain.fit(full, fitConfig);
    const p2 = await plain.fit(full, fitConfig);
    expect(Array.from(p2.weights.values)).toEqual(Array.from(p1.weights.values));
    plain.dispose();
  });

  test('personalization reports the global and the fine-tuned accuracy, and fine-tuning helps a weak global head', async () => {
    const trainer = new HeadTrainer(config, data);
    const global = getTrainableWeights(createHead(config, 2));
    const r = await trainer.personalize(global, { ...fitConfig, epochs: 2 });
    expect(r.numExamples).toBe(200);
    expect(r.global.accuracy).toBeLessThan(0.3);
    expect(r.personal.accuracy).toBeGreaterThan(r.global.accuracy + 0.3);
    trainer.dispose();
  });
});

describe('local fine-tuning of backbone layers', () => {
  // The default architecture, seeded, cut at its flattened conv2 output: "partial" with k = 1 trains conv2.
  const head: HeadConfig = { featureDim: 800, hidden: [32], classes: 10 };
  let fx: LayersFeatureExtractor;
  const trainerFor = async (seed: number) => {
    const net = createTrainableNetwork(fx, 1, head, seed);
    const features = (ds: ImageDataset) => boundaryFeatures(fx, net.plan, ds);
    return new HeadTrainer(
      head,
      {
        trainFeatures: await features(images.train),
        trainLabels: images.train.labels,
        valFeatures: await features(images.val),
        valLabels: images.val.labels,
      },
      [],
      net,
    );
  };
  /** The first `n` values (the backbone's tensors come first) and the rest. */
  const split = (w: Weights, layer: string) => {
    const n = w.specs.filter((s) => s.name.startsWith(`${layer}/`)).reduce((a, s) => a + shapeSize(s.shape), 0);
    return { backbone: w.values.subarray(0, n), head: w.values.subarray(n) };
  };
  const moved = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

  beforeAll(() => {
    fx = featureExtractor(createDefaultBackbone({ seed: 11, classes: 10 }), 'features');
  });

  test('partial k=1 trains conv2 on the wasm backend: its weights move and the network learns', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const trainer = await trainerFor(0);
    expect(trainer.backboneLayers).toEqual(['conv2']);
    const global = getTrainableWeights(createTrainableNetwork(fx, 1, head, 1).model);
    const before = trainer.evaluate(global).accuracy;
    const { weights, metrics } = await trainer.fit(global, { ...fitConfig, learningRate: 0.003 });
    expect(weights.specs.slice(0, 2).map((s) => s.name)).toEqual(['conv2/kernel', 'conv2/bias']);
    const [g, w] = [split(global, 'conv2'), split(weights, 'conv2')];
    expect(moved(w.backbone, g.backbone)).toBeGreaterThan(1e-2);
    expect(moved(w.head, g.head)).toBeGreaterThan(1e-2);
    expect(metrics.accuracy).toBeGreaterThan(0.6);
    expect(trainer.evaluate(weights).accuracy).toBeGreaterThan(before + 0.3);
    trainer.dispose();
  });

  test('a backbone learning-rate factor of 0 leaves the backbone weights exactly as received while the head trains; FedProx still works', async () => {
    const trainer = await trainerFor(0);
    const global = getTrainableWeights(createTrainableNetwork(fx, 1, head, 1).model);
    for (const proximalMu of [0, 0.1]) {
      const { weights, metrics } = await trainer.fit(global, { ...fitConfig, epochs: 1, backboneLrFactor: 0, proximalMu });
      const [g, w] = [split(global, 'conv2'), split(weights, 'conv2')];
      expect(Array.from(w.backbone)).toEqual(Array.from(g.backbone));
      expect(moved(w.head, g.head)).toBeGreaterThan(1e-2);
      expect(Number.isFinite(metrics.loss)).toBe(true);
    }
    // A small factor moves the backbone less than the full rate does.
    const small = await trainer.fit(global, { ...fitConfig, epochs: 1, backboneLrFactor: 0.1 });
    const full = await trainer.fit(global, { ...fitConfig, epochs: 1, backboneLrFactor: 1 });
    const g = split(global, 'conv2').backbone;
    expect(moved(split(small.weights, 'conv2').backbone, g)).toBeLessThan(0.5 * moved(split(full.weights, 'conv2').backbone, g));
    trainer.dispose();
  });
});
