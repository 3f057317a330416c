import { describe, expect, test } from 'vitest';
import { augmentDataset, withAugmentedCopies } from './augment.js';
import type { ImageDataset } from './dataset.js';

const dataset = (images: number[], channels: number, side: number): ImageDataset => ({
  images: Float32Array.from(images),
  labels: new Int32Array(images.length / (side * side * channels)),
  n: images.length / (side * side * channels),
  height: side,
  width: side,
  channels,
  classes: ['a', 'b'],
});

describe('seeded augmentation', () => {
  const img = dataset(
    Array.from({ length: 2 * 5 * 5 }, (_, i) => (i % 25 === 12 ? 1 : 0)),
    1,
    5,
  ); // a centre dot, twice

  test('is reproducible per seed, keeps labels and shape, and moves the image', () => {
    const a = augmentDataset(img, { shift: 0.3, rotation: 20 }, 7);
    const b = augmentDataset(img, { shift: 0.3, rotation: 20 }, 7);
    const c = augmentDataset(img, { shift: 0.3, rotation: 20 }, 8);
    expect(a.images).toEqual(b.images);
    expect(a.images).not.toEqual(c.images);
    expect(a.labels).toBe(img.labels);
    expect(a.images.length).toBe(img.images.length);
    expect(a.images).not.toEqual(img.images);
  });

  test('no transformation is the identity; a flip mirrors exactly', () => {
    expect(augmentDataset(img, {}, 1).images).toEqual(img.images);
    const row = dataset([1, 0, 0, 0, 0, ...new Array(20).fill(0)], 1, 5);
    const flipped = [0, 1, 2, 3].map((seed) => augmentDataset(row, { flip: true }, seed).images[4]);
    expect(flipped).toContain(1); // some seeds flip (the left pixel lands on the right) …
    expect(flipped).toContain(0); // … and some do not
  });

  test('out-of-range options are refused', () => {
    expect(() => augmentDataset(img, { shift: 0.6 }, 1)).toThrow(/shift in \[0, 0.5\)/);
    expect(() => augmentDataset(img, { rotation: 200 }, 1)).toThrow(/rotation in \[0, 180\]/);
  });
});

describe('augmented copies of a training split', () => {
  test('keeps the originals first, adds seeded copies with the same labels, and copies 0 changes nothing', () => {
    const ds = dataset(
      Array.from({ length: 3 * 25 }, (_, i) => (i % 7) / 7),
      1,
      5,
    );
    const grown = withAugmentedCopies(ds, { copies: 2, shift: 0.2, rotation: 15 }, 5);
    expect(grown.n).toBe(9);
    expect(grown.images.subarray(0, 75)).toEqual(ds.images);
    expect(Array.from(grown.labels)).toEqual([...ds.labels, ...ds.labels, ...ds.labels]);
    expect(grown.images.subarray(75, 150)).toEqual(augmentDataset(ds, { shift: 0.2, rotation: 15 }, 6).images);
    expect(withAugmentedCopies(ds, { copies: 0 }, 5)).toBe(ds);
  });
});
