import { join } from 'node:path';
import { exportGlobalModel, loadServedBackbone, DEFAULT_BACKBONE_DIR } from '@ftl/coordinator';
import { createHead, DEFAULT_HIDDEN, getTrainableWeights } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { holdoutAccuracy } from './holdout.js';
import { makeClient, runToEnd, scratch, startCoordinator } from './test-federation.js';

describe('federated run over real sockets', () => {
  test('3 clients, 2 rounds on 600 MNIST samples: the global model learns and beats chance on held-out digits', async () => {
    const dir = await scratch('fed');
    const { coordinator, url } = await startCoordinator({
      rounds: 2,
      exportDir: join(dir, 'model'),
      fit: { epochs: 5, batchSize: 16, learningRate: 0.002 },
    });
    const clients = await Promise.all(
      [0, 1, 2].map((index) => makeClient({ url, index, clients: 3, limit: 600, cacheDir: join(dir, `cache-${index}`) })),
    );
    const { summary, rows } = await runToEnd(coordinator, clients);

    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted, r.selected])).toEqual([
      ['aggregated', 3, 3],
      ['aggregated', 3, 3],
    ]);
    expect(summary.modelVersion).toBe(2);
    // Three head updates came in per round as binary frames: at least 4 bytes per weight each.
    const headBytes = summary.weights.values.length * 4;
    expect(rows[0]!.bytesIn).toBeGreaterThan(3 * headBytes);
    expect(rows[0]!.bytesIn).toBeLessThan(3 * headBytes * 1.05 + 20_000);

    // The same backbone with the untrained initial head, for the "before" accuracy.
    const backbone = await loadServedBackbone(DEFAULT_BACKBONE_DIR);
    const head = { featureDim: backbone.featureDim, hidden: DEFAULT_HIDDEN, classes: 10 };
    await exportGlobalModel({ backbone, head, weights: getTrainableWeights(createHead(head, 1)), dir: join(dir, 'initial'), meta: {} });
    const before = await holdoutAccuracy(join(dir, 'initial'));
    const after = await holdoutAccuracy(join(dir, 'model'));
    expect(after.n).toBe(1500);
    expect(after.accuracy).toBeGreaterThan(before.accuracy + 0.3);
    expect(after.accuracy).toBeGreaterThan(0.6); // chance is 0.1
    expect(rows[1]!.valAccuracy).toBeGreaterThan(0.5);
  });
});
