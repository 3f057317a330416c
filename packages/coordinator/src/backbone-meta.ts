import { ErrorCode, FtlError, readBesideModel } from '@ftl/shared';

/** Name of the description file that sits beside a backbone's `model.json`. */
export const BACKBONE_META_FILE = 'ftl-backbone.json';

/** What ftl knows about a backbone beyond its TensorFlow.js files: where to cut it and how it was made. */
export interface BackboneMeta {
  name: string;
  /** The layer (layers model) or node (graph model) whose (flattened) output is the feature vector. */
  featureLayer: string;
  inputShape: [number, number, number];
  /** {@link modelDigest} of model.json and its weight files when the description was written. */
  sha256?: string;
  source?: {
    dataset: string;
    trainSamples: number;
    testSamples: number;
    epochs: number;
    filters?: [number, number];
    batchSize: number;
    learningRate: number;
    seed: number;
    testAccuracy: number;
    trainingSeconds: number;
    backend: string;
  };
  command?: string;
}

/**
 * Reads `ftl-backbone.json` beside a backbone's model.json, from a folder or an http(s) address; `{}` when
 * there is none (the loader then cuts a layers model at `DEFAULT_FEATURE_LAYER` and reads a graph model at
 * its output).
 *
 * @throws FtlError(BACKBONE_LOAD) when the file exists but is malformed.
 */
export async function readBackboneMeta(source: string): Promise<Partial<BackboneMeta>> {
  const bytes = await readBesideModel(source, BACKBONE_META_FILE);
  if (bytes === undefined) return {};
  try {
    const meta = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<BackboneMeta>;
    if (typeof meta.featureLayer !== 'string') throw new Error('featureLayer must be a string');
    return meta;
  } catch (err) {
    throw new FtlError(ErrorCode.BackboneLoad, `${source}: ${BACKBONE_META_FILE} is malformed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
