import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from './backend.js';
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
});
