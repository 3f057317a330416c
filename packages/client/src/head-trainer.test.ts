import { createHead, getTrainableWeights, initBackend, loadBuiltinDataset, subset, type HeadConfig, type Weights } from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { HeadTrainer } from './head-trainer.js';

// Raw MNIST pixels stand in for backbone features: real data, no backbone needed.
const config: HeadConfig = { featureDim: 784, hidden: [32], classes: 10 };
let data: ConstructorParameters<typeof HeadTrainer>[1];

beforeAll(async () => {
  await initBackend();
  const mnist = loadBuiltinDataset('mnist');
  const train = subset(mnist, Array.from({ length: 400 }, (_, i) => i * 23));
  const val = subset(mnist, Array.from({ length: 200 }, (_, i) => i * 23 + 11));
  data = { trainFeatures: train.images, trainLabels: train.labels, valFeatures: val.images, valLabels: val.labels };
});

const distance = (a: Weights, b: Weights) => Math.sqrt(a.values.reduce((s, v, i) => s + (v - b.values[i]!) ** 2, 0));
const fitConfig = { epochs: 3, batchSize: 32, learningRate: 0.01, seed: 5 };

describe('local head training', () => {
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
