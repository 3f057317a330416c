import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageDataset, Logger } from '@ftl/shared';
import { cacheWriteError } from './cache-dir.js';

/** SHA-256 of a dataset's images, labels and shape: changes whenever the local data does. */
export function datasetDigest(ds: ImageDataset): string {
  const h = createHash('sha256');
  h.update(`${ds.n}x${ds.height}x${ds.width}x${ds.channels}\0${ds.classes.join('\u0001')}\0`);
  h.update(new Uint8Array(ds.images.buffer, ds.images.byteOffset, ds.images.byteLength));
  h.update(new Uint8Array(ds.labels.buffer, ds.labels.byteOffset, ds.labels.byteLength));
  return h.digest('hex');
}

/**
 * Backbone features of a dataset, computed once and kept on disk under `<cacheDir>/features/`, keyed by
 * the backbone's digest, its feature layer and the data's digest: a second run on the same data and
 * backbone skips the backbone entirely (a file of the wrong size counts as a miss); a changed backbone or dataset gets a new key.
 *
 * @example
 * const { features, hit } = await cachedFeatures({ cacheDir, backboneSha256, featureLayer, data: shard.train, featureDim, compute, log });
 */
export async function cachedFeatures(o: {
  cacheDir: string;
  backboneSha256: string;
  featureLayer: string;
  data: ImageDataset;
  featureDim: number;
  /** Computes the features on a miss (loading the backbone only then). */
  compute: () => Promise<Float32Array>;
  log: Logger;
  /**
   * The most bytes `<cacheDir>/features/` may hold (`--feature-cache-max-mb`): past it the least recently
   * used files are removed, never the one this call returns. None: no limit.
   */
  maxBytes?: number;
}): Promise<{ features: Float32Array; hit: boolean }> {
  const key = createHash('sha256')
    .update(`${o.backboneSha256}\0${o.featureLayer}\0${datasetDigest(o.data)}`)
    .digest('hex');
  const dir = join(o.cacheDir, 'features');
  const file = join(dir, `${key}.f32`);
  const expected = o.data.n * o.featureDim * 4;
  try {
    const bytes = await readFile(file);
    if (bytes.byteLength === expected) {
      o.log.info('feature-cache-hit', { key: key.slice(0, 12), samples: o.data.n });
      if (o.maxBytes !== undefined) {
        // A use makes the file the most recent, so eviction takes the features no run has asked for longest.
        const now = new Date();
        await utimes(file, now, now).catch(() => undefined);
        await evictFeatureCache(dir, o.maxBytes, file, o.log);
      }
      return { features: new Float32Array(new Uint8Array(bytes).buffer), hit: true };
    }
    o.log.warn('feature-cache-corrupt', { key: key.slice(0, 12), bytes: bytes.byteLength, expected });
  } catch {
    // Not cached yet.
  }
  const features = await o.compute();
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
    await rename(tmp, file);
  } catch (err) {
    throw cacheWriteError(o.cacheDir, err);
  }
  o.log.info('feature-cache-miss', { key: key.slice(0, 12), samples: o.data.n });
  if (o.maxBytes !== undefined) await evictFeatureCache(dir, o.maxBytes, file, o.log);
  return { features, hit: false };
}

/** The extension of a feature cache file; nothing else in the folder is counted or removed. */
const FEATURE_FILE = /\.f32$/;

/**
 * Removes the least recently used feature files of `dir` (by modification time, which a cache hit
 * renews) until the rest hold at most `maxBytes`, never `keep` (the features in use, kept even when they
 * alone pass the limit). Files another client sharing the folder removed first are skipped.
 *
 * @returns how many files and bytes were removed.
 * @example
 * await evictFeatureCache('.ftl/cache/features', 512 * 1024 * 1024, inUse, log);
 */
export async function evictFeatureCache(dir: string, maxBytes: number, keep: string, log: Logger): Promise<{ files: number; bytes: number }> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => FEATURE_FILE.test(n));
  const entries = (
    await Promise.all(
      names.map(async (name) => {
        const path = join(dir, name);
        const s = await stat(path).catch(() => undefined);
        return s?.isFile() ? { path, bytes: s.size, used: s.mtimeMs } : undefined;
      }),
    )
  ).filter((e) => e !== undefined);
  let total = entries.reduce((sum, e) => sum + e.bytes, 0);
  const removed = { files: 0, bytes: 0 };
  // Oldest use first; equal times by name, so two clients on one folder agree on the order.
  entries.sort((a, b) => a.used - b.used || (a.path < b.path ? -1 : 1));
  for (const e of entries) {
    if (total <= maxBytes) break;
    if (e.path === keep) continue;
    await rm(e.path, { force: true });
    total -= e.bytes;
    removed.files++;
    removed.bytes += e.bytes;
  }
  if (removed.files > 0) log.info('feature-cache-evicted', { files: removed.files, bytes: removed.bytes, kept: total, limit: maxBytes });
  if (total > maxBytes) log.warn('feature-cache-over-limit', { bytes: total, limit: maxBytes, why: 'the features in use alone are larger' });
  return removed;
}
