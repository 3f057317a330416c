import { describe, expect, test } from 'vitest';
import type { ImageDataset } from './dataset.js';
import { loadClientShard } from './shard.js';

// 1,000 one-pixel images of 10 classes; the pixel holds the image's index, so a shard's images can be traced.
const data: ImageDataset = {
  images: Float32Array.from({ length: 1000 }, (_, i) => i),
  labels: Int32Array.from({ length: 1000 }, (_, i) => i % 10),
  n: 1000,
  height: 1,
  width: 1,
  channels: 1,
  classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
};
const shard = (index: number, perClient?: number) =>
  loadClientShard(
    { dataset: 'mnist', partition: { kind: 'dirichlet', alpha: 0.5 }, clients: 5, index, seed: 3, ...(perClient ? { perClient } : {}) },
    undefined,
    data,
  );
const ids = (s: ReturnType<typeof shard>) => [...s.train.images, ...s.val.images];

describe('client shards', () => {
  test('perClient keeps that many of the site’s own samples, drawn from its part, the same on every call', () => {
    for (const index of [0, 1, 2, 3, 4]) {
      const full = new Set(ids(shard(index)));
      const small = ids(shard(index, 25));
      expect(small).toHaveLength(25);
      expect(small.every((id) => full.has(id))).toBe(true);
      expect(ids(shard(index, 25))).toEqual(small);
    }
  });

  test('a site with fewer samples than perClient keeps them all', () => {
    expect(ids(shard(0, 10_000))).toEqual(ids(shard(0)));
  });
});
