import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
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
  return { features, hit: false };
}
