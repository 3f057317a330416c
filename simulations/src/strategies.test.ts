import { parsePartition, parseStrategy } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { signFlip, simulate } from './simulate.js';
import { TEST_RUN } from './test-federation.js';

const TRUST_OFF = { normBound: 0, maxAbsValue: 0, weightCap: 0 };

// Small federations through the real coordinator and real clients over loopback socket.io.
const small = {
  ...TEST_RUN,
  clients: 5,
  partition: parsePartition('iid'),
  rounds: 2,
  epochs: 2,
  learningRate: 0.002,
  batchSize: 32,
  seed: 2,
  limit: 1000,
};

describe('strategies in real runs', () => {
  test('with a sign-flipping ×10 site and the trust policy off, FedAvg collapses while FedMedian still learns', async () => {
    const attacked = { ...small, attackers: 1, attack: signFlip(10), trust: TRUST_OFF };
    const avg = await simulate({ ...attacked, strategy: parseStrategy('fedavg') });
    const median = await simulate({ ...attacked, strategy: parseStrategy('fedmedian') });
    expect(median.heldOut).toBeGreaterThan(0.7);
    expect(avg.heldOut).toBeLessThan(median.heldOut - 0.3);
  });

  test('with the default trust policy, plain FedAvg leaves the sign-flipping site out of every round and learns', async () => {
    const r = await simulate({ ...small, attackers: 1, attack: signFlip(10), strategy: parseStrategy('fedavg') });
    expect(r.summary.rounds.map((x) => [x.accepted, x.excluded])).toEqual([
      [4, 1],
      [4, 1],
    ]);
    expect(r.heldOut).toBeGreaterThan(0.7);
  });

  test('local layers and post-training fine-tuning run end to end and report per-client accuracy', async () => {
    const shards = { ...small, partition: parsePartition('shards:2') };
    const local = await simulate({ ...shards, strategy: parseStrategy('fedavg'), localLayers: ['head_output'] });
    expect(local.summary.rounds.map((r) => r.status)).toEqual(['aggregated', 'aggregated']);
    expect(local.summary.weights.specs.map((s) => s.name)).toEqual(['head_hidden_1/kernel', 'head_hidden_1/bias']);
    expect(local.summary.rounds[1]!.valAccuracy).toBeGreaterThan(0.6);
    const tuned = await simulate({ ...shards, strategy: parseStrategy('fedprox', 'mu=0.1'), personalizeEpochs: 2 });
    const p = tuned.summary.personalization!;
    expect(p).toHaveLength(5);
    for (const r of p) expect(r.personalAccuracy).toBeGreaterThanOrEqual(r.globalAccuracy - 0.05);
  });
});
