import { parsePartition, parseStrategy, type Weights } from '@ftl/shared';
import { expect, test } from 'vitest';
import { signFlip, simulate } from './simulate.js';
import { TEST_RUN } from './test-federation.js';

test.each<['loss' | 'accuracy']>([['loss'], ['accuracy']])(
  'early stopping on the median validation %s ends the run after `patience` worse rounds and exports the best head, not the last',
  async (metric) => {
    // One site turns hostile from its third update on, so the federated validation loss jumps in round 3.
    let updates = 0;
    const flip = signFlip(10);
    const lateAttack = (trained: Weights, global: Weights) => (++updates >= 3 ? flip(trained, global) : trained);
    const r = await simulate({
      ...TEST_RUN,
      clients: 3,
      partition: parsePartition('iid'),
      rounds: 6,
      epochs: 2,
      learningRate: 0.002,
      batchSize: 32,
      seed: 5,
      limit: 900,
      strategy: parseStrategy('fedavg'),
      attackers: 1,
      attack: lateAttack,
      patience: 1,
      patienceMetric: metric,
      dropout: 0.2,
      l2: 1e-4,
      // The trust policy would leave the hostile updates out; off, they make round 3 really worse.
      trust: { normBound: 0, maxAbsValue: 0, weightCap: 0 },
    });
    const losses = r.summary.rounds.map((x) => x.valLoss);
    expect(r.summary.rounds).toHaveLength(3); // stopped one round after the best
    expect(r.summary.bestRound).toBe(2);
    expect(losses[2]!).toBeGreaterThan(losses[1]!);
    expect(r.summary.rounds[2]!.valAccuracy).toBeLessThan(0.5); // the last round is bad…
    expect(r.heldOut).toBeGreaterThan(0.8); // …but the exported model is round 2's
  },
);
