import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { loadBuiltinDataset } from './builtin.js';
import type { ImageDataset } from './dataset.js';
import { encodePng } from './image-codec.js';
import { parseImageShape } from './image-shape.js';
import { alignShardToRun, localLabels } from './label-map.js';
import { loadLocalShard, splitLocalData } from './local-data.js';

const root = mkdtempSync(join(tmpdir(), 'ftl-local-data-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const mnist = loadBuiltinDataset('mnist');

const tiny = (n: number): ImageDataset => ({
  images: Float32Array.from({ length: n }, (_, i) => i),
  labels: Int32Array.from({ length: n }, (_, i) => i % 2),
  n,
  height: 1,
  width: 1,
  channels: 1,
  classes: ['a', 'b'],
});
const ids = (ds: ImageDataset) => Array.from(ds.images);

describe('a site’s local data', () => {
  test('the train/validation split is seeded, disjoint, complete and keeps at least one validation sample', () => {
    const loaded = { dataset: tiny(40), labelOrigins: {} };
    const a = splitLocalData(loaded, { seed: 3 }, 'x');
    expect(a.val.n).toBe(6); // 15% of 40
    expect([...ids(a.train), ...ids(a.val)].sort((x, y) => x - y)).toEqual(ids(tiny(40)));
    expect(splitLocalData(loaded, { seed: 3 }, 'x')).toEqual(a);
    expect(ids(splitLocalData(loaded, { seed: 4 }, 'x').val)).not.toEqual(ids(a.val));
    expect(splitLocalData({ dataset: tiny(3), labelOrigins: {} }, { seed: 1 }, 'x').val.n).toBe(1);
    expect(splitLocalData(loaded, { seed: 1, limit: 10, valFraction: 0.5 }, 'x').val.n).toBe(5);
  });

  test('one sample is too few', () => {
    expectFtlError(
      () => splitLocalData({ dataset: tiny(1), labelOrigins: {} }, { seed: 1 }, 'folder /d'),
      ErrorCode.Dataset,
      /^folder \/d has 1 sample; a client needs at least 2 \(one to train on, one to validate\); add data$/,
    );
  });

  test('a built-in shard is brought to the target shape and its labels name the dataset as their origin', () => {
    const shard = loadLocalShard(
      { kind: 'builtin', dataset: 'mnist', partition: { kind: 'iid' }, clients: 2, index: 1, seed: 1, limit: 200 },
      { shape: parseImageShape('32x32x3'), loaded: mnist },
    );
    expect([shard.train.height, shard.train.width, shard.train.channels, shard.val.channels]).toEqual([32, 32, 3, 3]);
    expect(shard.train.n + shard.val.n).toBe(100);
    expect(shard.labelOrigins?.['7']).toBe('built-in dataset "mnist"');
    expectFtlError(
      () => alignShardToRun(shard, ['cat', 'dog']),
      ErrorCode.Dataset,
      /^local label "\d" \(from built-in dataset "mnist"\) is not in the run's label set \(cat, dog\)/,
    );
  });

  test('an image folder and a CSV file load through the same entry point', () => {
    const dir = join(root, 'folder');
    for (const [name, from] of [
      ['zero', 0],
      ['one', 1000],
    ] as const) {
      mkdirSync(join(dir, name), { recursive: true });
      for (let i = 0; i < 5; i++) {
        writeFileSync(
          join(dir, name, `${i}.png`),
          encodePng({ data: mnist.images.slice((from + i) * 784, (from + i + 1) * 784), height: 28, width: 28, channels: 1 }),
        );
      }
    }
    const folder = loadLocalShard({ kind: 'image-folder', dir, seed: 2, valFraction: 0.2 });
    expect([folder.train.n, folder.val.n]).toEqual([8, 2]);
    expect(localLabels(folder)).toEqual(['one', 'zero']);
    const aligned = alignShardToRun(folder, ['zero', 'one']);
    expect(Array.from(aligned.train.labels)).toEqual(Array.from(folder.train.labels, (l) => ['zero', 'one'].indexOf(folder.train.classes[l]!)));

    const file = join(root, 'data.csv');
    writeFileSync(file, `y,p0,p1,p2,p3\n${Array.from({ length: 6 }, (_, i) => `${i % 2 ? 'b' : 'a'},0,${i},0,255`).join('\n')}`);
    const csv = loadLocalShard({ kind: 'csv', file, labelColumn: 'y', seed: 1 }, { shape: parseImageShape('2x2x1') });
    expect(csv.train.n + csv.val.n).toBe(6);
    expect(csv.labelOrigins).toEqual({ a: `${file} line 2`, b: `${file} line 3` });
  });
});
