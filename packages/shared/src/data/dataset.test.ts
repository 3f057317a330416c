import { describe, expect, test } from 'vitest';
import { concatDatasets, keepClasses, subset, type ImageDataset } from './dataset.js';

const ds: ImageDataset = {
  images: Float32Array.from({ length: 6 * 4 }, (_, i) => Math.floor(i / 4)),
  labels: Int32Array.of(0, 5, 7, 5, 2, 9),
  n: 6,
  height: 2,
  width: 2,
  channels: 1,
  classes: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'],
};

describe('datasets', () => {
  test('keepClasses keeps the named classes only, relabelled in the order given, with their names', () => {
    const task = keepClasses(ds, [7, 5]);
    expect(task.n).toBe(3);
    expect(Array.from(task.labels)).toEqual([1, 0, 1]);
    expect(task.classes).toEqual(['h', 'f']);
    // Each kept image travels with its own label: images 1, 2 and 3 of the source.
    expect(Array.from(task.images.filter((_, i) => i % 4 === 0))).toEqual([1, 2, 3]);
  });

  test('subset copies the images at the indices, in that order', () => {
    const s = subset(ds, [4, 0]);
    expect(Array.from(s.labels)).toEqual([2, 0]);
    expect(Array.from(s.images)).toEqual([4, 4, 4, 4, 0, 0, 0, 0]);
  });

  test('concatDatasets pools datasets in order and refuses ones of another shape or class list', () => {
    const pooled = concatDatasets([subset(ds, [1]), subset(ds, [4, 0])]);
    expect(pooled.n).toBe(3);
    expect(Array.from(pooled.labels)).toEqual([5, 2, 0]);
    expect(Array.from(pooled.images)).toEqual([1, 1, 1, 1, 4, 4, 4, 4, 0, 0, 0, 0]);
    expect(() => concatDatasets([ds, { ...ds, classes: ['x'] }])).toThrow('datasets to concatenate must share their image shape and classes');
  });
});
