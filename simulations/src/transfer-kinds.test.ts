import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FtlClient } from '@ftl/client';
import {
  createLogger,
  federationSplit,
  imageSize,
  loadBuiltinDataset,
  loadLayersModelFromFolder,
  splitIndices,
  subset,
  type ClientShard,
  type ImageDataset,
} from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { scratch, startCoordinator } from './test-federation.js';

// The default backbone was pre-trained on Fashion-MNIST (10 clothing classes). These runs move it to
// (a) a new label set and (b) the same labels on shifted images; the head's output follows the run's labels.
const { pool, test: heldOut } = federationSplit(loadBuiltinDataset('mnist'));

/** Only the given digits, relabelled 0..k−1 under their names; optionally with every pixel transformed. */
function digits(ds: ImageDataset, keep: string[], pixel: (v: number) => number = (v) => v): ImageDataset {
  const idx = Array.from(ds.labels.keys()).filter((i) => keep.includes(ds.classes[ds.labels[i]!]!));
  const s = subset(ds, idx);
  return {
    ...s,
    classes: keep,
    images: s.images.map(pixel),
    labels: s.labels.map((l) => keep.indexOf(ds.classes[l]!)),
  };
}

function shards(ds: ImageDataset, clients: number, limit: number): ClientShard[] {
  const [, mine] = splitIndices(ds.n, Math.min(1, limit / ds.n), 9);
  const cut = subset(ds, mine);
  return Array.from({ length: clients }, (_, c) => {
    const part = subset(
      cut,
      Array.from({ length: cut.n }, (_, i) => i).filter((i) => i % clients === c),
    );
    const [train, val] = splitIndices(part.n, 0.2, c + 1);
    return { train: subset(part, train), val: subset(part, val) };
  });
}

/** Accuracy of an exported model on a held-out set. */
async function exportedAccuracy(dir: string, ds: ImageDataset): Promise<number> {
  const model = await loadLayersModelFromFolder(dir);
  const x = tf.tensor4d(ds.images, [ds.n, ds.height, ds.width, ds.channels]);
  const y = model.predict(x) as tf.Tensor;
  expect(y.shape).toEqual([ds.n, ds.classes.length]); // one output per run label
  const predicted = Array.from(y.argMax(1).dataSync());
  tf.dispose([x, y]);
  model.dispose();
  return predicted.filter((p, i) => p === ds.labels[i]).length / ds.n;
}

async function federate(classes: string[], clientShards: ClientShard[]): Promise<string> {
  const dir = await scratch('transfer');
  const exportDir = join(dir, 'model');
  const { coordinator, url } = await startCoordinator({
    rounds: 3,
    minClients: clientShards.length,
    classes,
    exportDir,
    fit: { epochs: 4, batchSize: 32, learningRate: 0.002 },
  });
  const ends = clientShards.map((shard, i) =>
    new FtlClient({
      serverUrl: url,
      name: `site-${i}`,
      shard,
      cacheDir: join(dir, 'cache'),
      log: createLogger('client').child({ client: i }),
    }).run(),
  );
  const summary = await coordinator.run();
  await Promise.all(ends);
  await coordinator.close();
  expect(summary.rounds.every((r) => r.accepted === clientShards.length)).toBe(true);
  expect(imageSize(clientShards[0]!.train)).toBe(784);
  return exportDir;
}

describe('inductive and transductive transfer from the Fashion-MNIST backbone', () => {
  test('inductive: a new label set (digits 0–4) gets a 5-way head that learns it', async () => {
    const classes = ['0', '1', '2', '3', '4'];
    const model = await federate(classes, shards(digits(pool, classes), 2, 900));
    const accuracy = await exportedAccuracy(model, digits(heldOut, classes));
    expect(accuracy).toBeGreaterThan(0.85); // chance: 0.2 (measured 0.96)
  });

  test('transductive: the same labels on shifted images (inverted digits) still transfer', async () => {
    const classes = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
    const invert = (v: number) => 1 - v;
    const model = await federate(classes, shards(digits(pool, classes, invert), 2, 1200));
    const accuracy = await exportedAccuracy(model, digits(heldOut, classes, invert));
    expect(accuracy).toBeGreaterThan(0.8); // chance: 0.1 (measured 0.89)
  });
});
