import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import type { ImageDataset } from './dataset.js';
import { alignShardToRun, compareLabels, labelIndexMap, localLabels, type LocalShard } from './label-map.js';

const ds = (labels: number[], classes: string[]): ImageDataset => ({
  images: new Float32Array(labels.length),
  labels: Int32Array.from(labels),
  n: labels.length,
  height: 1,
  width: 1,
  channels: 1,
  classes,
});

describe('mapping local labels to the run label set', () => {
  test('names decide, not local order', () => {
    expect(Array.from(labelIndexMap(['cat', 'dog'], ['dog', 'bird', 'cat']))).toEqual([2, 0]);
  });

  test('a shard is renumbered to the run order and takes the run classes; the images stay', () => {
    const shard: LocalShard = { train: ds([0, 1, 1, 2], ['normal', 'pneumonia', 'covid']), val: ds([2, 0], ['normal', 'pneumonia', 'covid']) };
    const aligned = alignShardToRun(shard, ['covid', 'normal', 'pneumonia', 'other']);
    expect(Array.from(aligned.train.labels)).toEqual([1, 2, 2, 0]);
    expect(Array.from(aligned.val.labels)).toEqual([0, 1]);
    expect(aligned.train.classes).toEqual(['covid', 'normal', 'pneumonia', 'other']);
    expect(aligned.train.images).toBe(shard.train.images);
  });

  test('an unknown label is a DATASET error naming the label, where it came from and how to fix it', () => {
    const shard: LocalShard = {
      train: ds([0, 1], ['cat', 'zebra']),
      val: ds([0], ['cat', 'zebra']),
      labelOrigins: { cat: 'folder /data/cat', zebra: 'folder /data/zebra' },
    };
    expectFtlError(
      () => alignShardToRun(shard, ['cat', 'dog']),
      ErrorCode.Dataset,
      /^local label "zebra" \(from folder \/data\/zebra\) is not in the run's label set \(cat, dog\); rename it to one of the run's labels, remove those samples, or ask the operator to add "zebra" to the run's classes$/,
    );
  });

  test('a label that differs only in case is still unknown, with a hint', () => {
    const shard: LocalShard = { train: ds([0], ['Pneumonia']), val: ds([0], ['Pneumonia']), labelOrigins: { Pneumonia: 'data.csv line 2' } };
    expectFtlError(
      () => alignShardToRun(shard, ['normal', 'pneumonia']),
      ErrorCode.Dataset,
      /^local label "Pneumonia" \(from data\.csv line 2\) .*; did you mean "pneumonia"\? Names must match exactly;/,
    );
  });

  test('a declared local class with no samples may be missing from the run', () => {
    // e.g. a built-in dataset's client whose partition holds no "9"
    const shard: LocalShard = { train: ds([0, 1], ['0', '1', '9']), val: ds([1], ['0', '1', '9']) };
    expect(Array.from(alignShardToRun(shard, ['1', '0']).train.labels)).toEqual([1, 0]);
    expect(localLabels(shard)).toEqual(['0', '1']);
  });

  test('labels sort numbers by value, then text', () => {
    expect(['10', '2', 'b', 'a', '1'].sort(compareLabels)).toEqual(['1', '2', '10', 'a', 'b']);
  });
});
