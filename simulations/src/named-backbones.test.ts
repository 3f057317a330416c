import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStrategy } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { simulate } from './simulate.js';

const BACKBONES_DIR = fileURLToPath(new URL('../../packages/coordinator/backbones', import.meta.url));

/** What a committed encoder's ftl-backbone.json says about its size. */
interface Described {
  architecture: { featureDim: number };
  parameters: { encoder: number; linearHead10: number };
}

/** The one federation every backbone is run through: 3 IID sites, 2 rounds of FedAvg, a linear head from a random start, 900 MNIST images, seed 1. */
function sameFederation(backboneDir: string) {
  return simulate({
    backboneDir,
    hidden: [],
    headInit: 'random',
    clients: 3,
    rounds: 2,
    limit: 900,
    partition: { kind: 'iid' },
    strategy: parseStrategy('fedavg'),
    epochs: 5,
    learningRate: 0.01,
    batchSize: 16,
    seed: 1,
  });
}

// Each line printed is one row of the "Backbones" section of docs/results.md.
describe.each(['encoder-fmnist', 'encoder-fmnist-0to4', 'encoder-spatial-fmnist', 'encoder-spatial-fmnist-0to4'])(
  'the committed %s backbone, by name, through a real federation',
  (name) => {
    test('3 sites, 2 rounds, a linear head on 900 MNIST images: above chance on held-out digits; a head-only update is a tenth of a full one or less', async () => {
      const meta = JSON.parse(await readFile(join(BACKBONES_DIR, name, 'ftl-backbone.json'), 'utf8')) as Described;
      const r = await sameFederation(name);
      expect(r.featureDim).toBe(meta.architecture.featureDim);
      expect(r.summary.rounds.map((x) => [x.status, x.accepted])).toEqual([
        ['aggregated', 3],
        ['aggregated', 3],
      ]);
      expect(r.heldOut).toBeGreaterThan(0.3); // chance is 0.1
      // The head is all that travels: its float32 values are most of an update's bytes.
      const headValues = meta.architecture.featureDim * 10 + 10;
      expect(r.summary.weights.values.length).toBe(headValues);
      const perUpdate = r.summary.rounds[0]!.bytesIn / 3;
      expect(perUpdate).toBeGreaterThan(4 * headValues);
      // The same update with the encoder's values in it too, as a full-model update carries them.
      const full = perUpdate + 4 * meta.parameters.encoder;
      expect(full / perUpdate).toBeGreaterThanOrEqual(10);
      process.stdout.write(
        `${name}: held-out MNIST ${(r.heldOut * 100).toFixed(2)}%, head-only update ${perUpdate.toFixed(0)} bytes, ` +
          `with the encoder ${full.toFixed(0)} bytes (${(full / perUpdate).toFixed(1)}×)\n`,
      );
    });
  },
);

test('the first backbone by name (small-fmnist), the same federation, for comparison', async () => {
  const r = await sameFederation('small-fmnist');
  expect([r.featureDim, r.summary.weights.values.length]).toEqual([800, 8_010]);
  expect(r.heldOut).toBeGreaterThan(0.3);
  process.stdout.write(
    `small-fmnist: held-out MNIST ${(r.heldOut * 100).toFixed(2)}%, head-only update ${(r.summary.rounds[0]!.bytesIn / 3).toFixed(0)} bytes\n`,
  );
});
