import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  createHeadLayers, featureExtractor, saveLayersModelToFolder, setTrainableWeights, type HeadConfig, type Weights,
} from '@ftl/shared';

/** Description written beside an exported model: what it predicts and how it was made. */
export const EXPORT_META_FILE = 'ftl-model.json';

/**
 * Writes backbone + head as one TensorFlow.js layers model folder (`model.json`, `weights.bin`) that
 * `tf.loadLayersModel` loads and that predicts class probabilities from images, plus `ftl-model.json`.
 */
export async function exportGlobalModel(options: {
  backbone: tf.LayersModel;
  featureLayer: string;
  head: HeadConfig;
  weights: Weights;
  dir: string;
  meta: Record<string, unknown>;
  /** Head layers the clients kept for themselves: exported with their initial values. */
  localLayers?: readonly string[];
}): Promise<{ digest: string }> {
  const fx = featureExtractor(options.backbone, options.featureLayer);
  let x = fx.model.outputs[0]!;
  for (const layer of createHeadLayers(options.head, 0)) x = layer.apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: fx.model.inputs, outputs: x, name: 'ftl_global_model' });
  setTrainableWeights(model, options.weights, options.localLayers);
  const { digest } = await saveLayersModelToFolder(model, options.dir);
  await writeFile(join(options.dir, EXPORT_META_FILE), JSON.stringify({ ...options.meta, sha256: digest }, null, 2) + '\n');
  return { digest };
}
