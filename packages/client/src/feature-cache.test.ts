import { mkdtemp, readdir, utimes, writeFile } from 'node:fs/promises';
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
function run(cacheDir: string, backboneSha256: string, ds: ImageDataset, counter: { calls: number }, maxBytes?: number) {
  return cachedFeatures({
    ...(maxBytes !== undefined ? { maxBytes } : {}),
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

describe('feature cache size limit', () => {
  const fileBytes = () => data.n * 2 * 4;
  const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000);

  test('a new file evicts the least recently used one, and a hit makes a file the most recent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-fc-'));
    const features = join(dir, 'features');
    const counter = { calls: 0 };
    const limit = 2 * fileBytes() + 100; // room for two files
    await run(dir, 'a'.repeat(64), data, counter, limit);
    const [fileA] = await readdir(features);
    await run(dir, 'b'.repeat(64), data, counter, limit);
    const fileB = (await readdir(features)).find((f) => f !== fileA)!;
    // A was written before B; the hit below must make A the newer of the two all the same.
    await utimes(join(features, fileA!), hoursAgo(2), hoursAgo(2));
    await utimes(join(features, fileB), hoursAgo(1), hoursAgo(1));
    expect((await run(dir, 'a'.repeat(64), data, counter, limit)).hit).toBe(true);
    await run(dir, 'c'.repeat(64), data, counter, limit);
    const left = await readdir(features);
    expect(left).toHaveLength(2);
    expect(left).toContain(fileA);
    expect(left).not.toContain(fileB);
    expect(lines.some((l) => l.includes('feature-cache-evicted') && l.includes(`bytes=${fileBytes()}`))).toBe(true);
    const before = counter.calls;
    expect((await run(dir, 'a'.repeat(64), data, counter, limit)).hit).toBe(true);
    expect((await run(dir, 'b'.repeat(64), data, counter, limit)).hit).toBe(false);
    expect(counter.calls).toBe(before + 1);
  });

  test('the features in use stay even when they alone pass the limit, and other files are never touched', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-fc-'));
    const features = join(dir, 'features');
    const counter = { calls: 0 };
    const first = await run(dir, 'a'.repeat(64), data, counter, 10);
    expect(first.hit).toBe(false);
    expect(await readdir(features)).toHaveLength(1);
    expect(lines.some((l) => l.includes('feature-cache-over-limit'))).toBe(true);
    await writeFile(join(features, 'notes.txt'), new Uint8Array(10_000));
    await run(dir, 'b'.repeat(64), data, counter, 10);
    const left = await readdir(features);
    expect(left).toContain('notes.txt');
    expect(left.filter((f) => f.endsWith('.f32'))).toHaveLength(1);
    expect((await run(dir, 'b'.repeat(64), data, counter, 10)).hit).toBe(true);
    expect(counter.calls).toBe(2);
  });

  test('without a limit nothing is removed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-fc-'));
    const counter = { calls: 0 };
    for (const c of 'abcd') await run(dir, c.repeat(64), data, counter);
    expect(await readdir(join(dir, 'features'))).toHaveLength(4);
  });
});
