import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from './backend.js';
import { createDefaultBackbone } from './backbone.js';
import { createHead, getTrainableWeights } from './head.js';

beforeAll(async () => {
  await initBackend();
});

describe('head', () => {
  test('dropout and L2 change training, not what travels: the wire carries the same dense tensors', () => {
    const plain = createHead({ featureDim: 8, hidden: [4, 3], classes: 2 }, 1);
    const regular = createHead({ featureDim: 8, hidden: [4, 3], classes: 2, dropout: 0.3, l2: 0.01 }, 1);
    expect(regular.layers.map((l) => l.name).filter((n) => n.startsWith('head_'))).toEqual(['head_hidden_1', 'head_dropout_1', 'head_hidden_2', 'head_dropout_2', 'head_output']);
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
      const bb = () => createDefaultBackbone({ seed, classes: 3 }).getWeights().map((w) => Array.from(w.dataSync()));
      expect(bb()).toEqual(bb());
    }
    const zero = getTrainableWeights(createHead({ featureDim: 8, hidden: [4], classes: 3 }, 0)).values;
    const one = getTrainableWeights(createHead({ featureDim: 8, hidden: [4], classes: 3 }, 1)).values;
    expect(Array.from(zero)).not.toEqual(Array.from(one));
  });
});
