import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FtlClient } from '@ftl/client';
import {
  alignShardToRun,
  convertChannels,
  createLogger,
  encodeJpeg,
  encodePng,
  isFtlError,
  labelIndexMap,
  loadBuiltinDataset,
  loadImageFolder,
  loadLayersModelFromFolder,
  loadLocalShard,
  resizeBilinear,
  type Pixels,
} from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { runToEnd, scratch, startCoordinator } from './test-federation.js';

// Real MNIST digits written as image files, one sub-folder per class, the way a site would hold them.
const mnist = loadBuiltinDataset('mnist');
const NAMES: Record<number, string> = { 0: 'zero', 1: 'one', 7: 'seven' };
const RUN_CLASSES = ['seven', 'zero', 'one']; // the run's order differs from every site's sorted folder order

function digit(d: number, i: number): Pixels {
  const at = mnist.labels.indexOf(d) + i;
  return { data: mnist.images.slice(at * 784, (at + 1) * 784), height: 28, width: 28, channels: 1 };
}

/** Writes `perClass` images of each digit, from index `from` within the digit, as `format` files. */
function writeFolder(dir: string, digits: number[], o: { from: number; perClass: number; format: 'png' | 'jpeg' | 'png-rgb-56' }): string {
  for (const d of digits) {
    const classDir = join(dir, NAMES[d] ?? String(d));
    mkdirSync(classDir, { recursive: true });
    for (let i = 0; i < o.perClass; i++) {
      const img = digit(d, o.from + i);
      const bytes =
        o.format === 'jpeg' ? encodeJpeg(img, 90) : o.format === 'png' ? encodePng(img) : encodePng(convertChannels(resizeBilinear(img, 56, 56), 3));
      writeFileSync(join(classDir, `${d}-${o.from + i}.${o.format === 'jpeg' ? 'jpg' : 'png'}`), bytes);
    }
  }
  return dir;
}

const client = (url: string, name: string, dir: string, cacheDir: string) =>
  new FtlClient({
    serverUrl: url,
    name,
    cacheDir,
    log: createLogger('client').child({ client: name }),
    shard: loadLocalShard({ kind: 'image-folder', dir, seed: 3 }),
  });

describe('federated training from image folders', () => {
  test('three sites with PNG/JPEG folders of different classes, sizes and channels: the global model learns the run labels', async () => {
    const dir = await scratch('image-folder');
    // Site a: grey 28×28 PNGs of all three classes; site b: 56×56 RGB PNGs of two; site c: JPEGs of two.
    const sites = [
      writeFolder(join(dir, 'site-a'), [0, 1, 7], { from: 0, perClass: 50, format: 'png' }),
      writeFolder(join(dir, 'site-b'), [1, 7], { from: 50, perClass: 70, format: 'png-rgb-56' }),
      writeFolder(join(dir, 'site-c'), [0, 7], { from: 120, perClass: 70, format: 'jpeg' }),
    ];
    const testDir = writeFolder(join(dir, 'held-out'), [0, 1, 7], { from: 300, perClass: 60, format: 'png' });

    const { coordinator, url } = await startCoordinator({
      classes: RUN_CLASSES,
      minClients: 3,
      rounds: 3,
      exportDir: join(dir, 'model'),
      fit: { epochs: 5, batchSize: 16, learningRate: 0.002 },
    });
    const clients = sites.map((site, i) => client(url, `site-${'abc'[i]}`, site, join(dir, `cache-${i}`)));
    const { summary, rows } = await runToEnd(coordinator, clients);

    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted])).toEqual([
      ['aggregated', 3],
      ['aggregated', 3],
      ['aggregated', 3],
    ]);
    expect(rows.at(-1)!.valAccuracy).toBeGreaterThan(0.85);

    // The exported model (backbone + head) on held-out digits no site had, labelled by the run's order.
    const { dataset: test } = loadImageFolder(testDir);
    const toRun = labelIndexMap(test.classes, RUN_CLASSES);
    const model = await loadLayersModelFromFolder(join(dir, 'model'));
    const accuracy = tf.tidy(() => {
      const predicted = (model.predict(tf.tensor4d(test.images, [test.n, 28, 28, 1])) as tf.Tensor2D).argMax(1);
      return predicted
        .equal(
          tf.tensor1d(
            Int32Array.from(test.labels, (l) => toRun[l]!),
            'int32',
          ),
        )
        .mean()
        .dataSync()[0]!;
    });
    model.dispose();
    expect(test.n).toBe(180);
    expect(accuracy).toBeGreaterThan(0.85); // chance is 1/3
  });

  test('a site with a label outside the run stops with an error naming it and its folder; the run completes with the others', async () => {
    const dir = await scratch('image-folder-unknown');
    const good = [
      writeFolder(join(dir, 'site-a'), [0, 1, 7], { from: 0, perClass: 20, format: 'png' }),
      writeFolder(join(dir, 'site-b'), [0, 1, 7], { from: 20, perClass: 20, format: 'jpeg' }),
    ];
    const bad = writeFolder(join(dir, 'site-x'), [0, 1, 3], { from: 40, perClass: 20, format: 'png' }); // "3" is not a run label
    expect(() => alignShardToRun(loadLocalShard({ kind: 'image-folder', dir: bad, seed: 1 }), RUN_CLASSES)).toThrow(/local label "3"/);

    const { coordinator, url } = await startCoordinator({
      classes: RUN_CLASSES,
      minClients: 2,
      rounds: 1,
      waitTimeoutMs: 60_000,
      fit: { epochs: 2, batchSize: 16, learningRate: 0.002 },
    });
    const badClient = client(url, 'site-x', bad, join(dir, 'cache-x'));
    const failed = badClient.run().then(
      () => undefined,
      (err: unknown) => err,
    );
    const { summary, rows } = await runToEnd(
      coordinator,
      good.map((site, i) => client(url, `site-${'ab'[i]}`, site, join(dir, `cache-${i}`))),
    );

    const err = await failed;
    expect(isFtlError(err, 'DATASET')).toBe(true);
    expect((err as Error).message).toBe(
      `local label "3" (from folder ${join(bad, '3')}) is not in the run's label set (seven, zero, one); ` +
        `rename it to one of the run's labels, remove those samples, or ask the operator to add "3" to the run's classes`,
    );
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted])).toEqual([['aggregated', 2]]);
  });
});
