import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_FEATURE_LAYER, ErrorCode, FtlError } from '@ftl/shared';

/** Name of the description file that sits beside a backbone's `model.json`. */
export const BACKBONE_META_FILE = 'ftl-backbone.json';

/** What ftl knows about a backbone beyond its TensorFlow.js files: where to cut it and how it was made. */
export interface BackboneMeta {
  name: string;
  /** The layer whose (flattened) output is the feature vector. */
  featureLayer: string;
  inputShape: [number, number, number];
  /** {@link modelDigest} of model.json and its weight files when the description was written. */
  sha256?: string;
  source?: {
    dataset: string; trainSamples: number; testSamples: number; epochs: number; filters?: [number, number]; batchSize: number;
    learningRate: number; seed: number; testAccuracy: number; trainingSeconds: number; backend: string;
  };
  command?: string;
}

/** Reads `ftl-backbone.json` from a backbone folder; a folder without one is cut at {@link DEFAULT_FEATURE_LAYER}. */
export async function readBackboneMeta(dir: string): Promise<Partial<BackboneMeta>> {
  let text: string;
  try {
    text = await readFile(join(dir, BACKBONE_META_FILE), 'utf8');
  } catch {
    return { featureLayer: DEFAULT_FEATURE_LAYER };
  }
  try {
    const meta = JSON.parse(text) as Partial<BackboneMeta>;
    if (typeof meta.featureLayer !== 'string') throw new Error('featureLayer must be a string');
    return meta;
  } catch (err) {
    throw new FtlError(ErrorCode.BackboneLoad, `${join(dir, BACKBONE_META_FILE)} is malformed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
