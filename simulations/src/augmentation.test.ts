import { join } from 'node:path';
import { loadBuiltinDataset, loadClientShard } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { makeClient, scratch, startCoordinator } from './test-federation.js';

describe('training-time augmentation', () => {
  test('each site adds its seeded augmented copies before extraction; the run still learns', async () => {
    const dir = await scratch('augment');
    const { coordinator, url } = await startCoordinator({
      rounds: 2,
      minClients: 2,
      augment: { copies: 1, shift: 0.1, flip: false, rotation: 10 },
      fit: { epochs: 3, batchSize: 32, learningRate: 0.002 },
    });
    const clients = await Promise.all([0, 1].map((index) => makeClient({ url, index, clients: 2, limit: 600, cacheDir: join(dir, 'cache') })));
    let trainCounts: number[] = [];
    const ends = clients.map((c) => c.run());
    const summary = await coordinator.run(() => {
      trainCounts = coordinator.server.clientViews().map((v) => v.ready?.numTrain ?? 0);
    });
    await Promise.all(ends);
    await coordinator.close();
    // Every training image plus one augmented copy of it; validation is not augmented.
    const mnist = loadBuiltinDataset('mnist');
    const expected = [0, 1].map(
      (index) =>
        2 * loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 2, index, seed: 5, limit: 600 }, undefined, mnist).train.n,
    );
    expect(trainCounts).toEqual(expected);
    expect(summary.rounds.every((r) => r.accepted === 2)).toBe(true);
    expect(summary.rounds.at(-1)!.valAccuracy).toBeGreaterThan(0.7);
  });
});
