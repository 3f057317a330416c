import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, loadBuiltinDataset, subset, type ImageDataset } from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { cachedFeatures } from './feature-cache.js';

let data: ImageDataset;
beforeAll(() => {
  data = subset(
    loadBuiltinDataset('mnist'),
    Array.from({ length: 50 }, (_, i) => i * 97),
  );
});

const lines: string[] = [];
const log = createLogger('test', { level: 'info', write: (l) => lines.push(l) });

/** A stand-in "backbone": the per-image pixel sum and mean, counted so the test sees when it runs. */
function run(cacheDir: string, backboneSha256: string, ds: ImageDataset, counter: { calls: number }) {
  return cachedFeatures({
    cacheDir,
    backboneSha256,
    featureLayer: 'features',
    data: ds,
    featureDim: 2,
    log,
    compute: async () => {
      counter.calls++;
      const out = new Float32Array(ds.n * 2);
      for (let i = 0; i < ds.n; i++) {
        let sum = 0;
        for (let p = 0; p < 784; p++) sum += ds.images[i * 784 + p]!;
        out[2 * i] = sum;
        out[2 * i + 1] = sum / 784;
      }
      return out;
    },
  });
}

describe('feature cache', () => {
  test('a second run on the same data and backbone reuses the features and logs a hit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-fc-'));
    const counter = { calls: 0 };
    const first = await run(dir, 'a'.repeat(64), data, counter);
    const second = await run(dir, 'a'.repeat(64), data, counter);
    expect(counter.calls).toBe(1);
    expect([first.hit, second.hit]).toEqual([false, true]);
    expect(Array.from(second.features)).toEqual(Array.from(first.features));
    expect(lines.some((l) => l.includes('feature-cache-hit'))).toBe(true);
  });

  test('a changed backbone or changed data computes afresh', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-fc-'));
    const counter = { calls: 0 };
    await run(dir, 'a'.repeat(64), data, counter);
    expect((await run(dir, 'b'.repeat(64), data, counter)).hit).toBe(false);
    const images = data.images.slice();
    images[400] = 1 - images[400]!;
    expect((await run(dir, 'a'.repeat(64), { ...data, images }, counter)).hit).toBe(false);
    expect(counter.calls).toBe(3);
    expect(await readdir(join(dir, 'features'))).toHaveLength(3);
  });

  test('a truncated cache file is detected and recomputed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-fc-'));
    const counter = { calls: 0 };
    const first = await run(dir, 'c'.repeat(64), data, counter);
    const [file] = await readdir(join(dir, 'features'));
    await writeFile(join(dir, 'features', file!), new Uint8Array(10));
    const again = await run(dir, 'c'.repeat(64), data, counter);
    expect(again.hit).toBe(false);
    expect(counter.calls).toBe(2);
    expect(Array.from(again.features)).toEqual(Array.from(first.features));
  });
});
