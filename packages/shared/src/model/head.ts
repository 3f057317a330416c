import * as tf from '@tensorflow/tfjs';
import { tfjsSeed } from '../random.js';
import { assertSameSpecs, shapeSize, specsSize, type WeightSpec, type Weights } from '../codec/weights.js';

/** The shape of the trainable head on top of the backbone's features. */
export interface HeadConfig {
  featureDim: number;
  /** Hidden dense layer sizes (ReLU); empty for a linear head. */
  hidden: number[];
  classes: number;
  /** L2 penalty on the dense kernels (0 or absent: none). */
  l2?: number;
  /** Dropout rate after each hidden layer during training, in [0, 1) (0 or absent: none). */
  dropout?: number;
}

/** Every head layer's name starts with this; backbone layers may not (fine-tuning tells them apart by name). */
export const HEAD_LAYER_PREFIX = 'head_';

/** Whether a layer (or a wire tensor's layer part) belongs to the head rather than the backbone. */
export function isHeadLayer(name: string): boolean {
  return name.startsWith(HEAD_LAYER_PREFIX);
}

/** The default head: one 128-unit hidden layer (the cut-point trial in the Slice issue). */
export const DEFAULT_HIDDEN = [128];

/**
 * Builds the head's layers (not yet connected), named `head_hidden_<i>`, `head_dropout_<i>` (no weights,
 * seeded) and `head_output`. The wire carries the dense layers' tensors only.
 */
export function createHeadLayers(config: HeadConfig, seed: number): tf.layers.Layer[] {
  const kernelRegularizer = config.l2 ? tf.regularizers.l2({ l2: config.l2 }) : undefined;
  const layers: tf.layers.Layer[] = config.hidden.flatMap((units, i) => [
    tf.layers.dense({
      name: `head_hidden_${i + 1}`, units, activation: 'relu',
      kernelInitializer: tf.initializers.heNormal({ seed: tfjsSeed(seed + i) }), ...(kernelRegularizer ? { kernelRegularizer } : {}),
    }),
    ...(config.dropout ? [tf.layers.dropout({ name: `head_dropout_${i + 1}`, rate: config.dropout, seed: tfjsSeed(seed + 100 + i) })] : []),
  ]);
  layers.push(tf.layers.dense({
    name: 'head_output', units: config.classes, activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: tfjsSeed(seed + config.hidden.length) }), ...(kernelRegularizer ? { kernelRegularizer } : {}),
  }));
  return layers;
}

/**
 * A standalone head model from features to class probabilities.
 *
 * @example
 * const head = createHead({ featureDim: 400, hidden: [128], classes: 10 }, 7);
 */
export function createHead(config: HeadConfig, seed: number): tf.Sequential {
  const model = tf.sequential({ name: 'ftl_head' });
  model.add(tf.layers.inputLayer({ inputShape: [config.featureDim] }));
  for (const layer of createHeadLayers(config, seed)) model.add(layer);
  return model;
}

/**
 * Wire names of a model's trainable tensors: `<layer>/<kernel|bias>`, stable across processes. Layers
 * named in `exclude` (a client's local, personal layers) are left out.
 */
function trainableEntries(model: tf.LayersModel, exclude: readonly string[] = []): Array<{ spec: WeightSpec; variable: tf.LayerVariable }> {
  return model.layers.filter((layer) => !exclude.includes(layer.name)).flatMap((layer) =>
    layer.trainableWeights.map((v) => ({
      // A variable's shape is always concrete; tfjs types it as a layer Shape that may hold null.
      spec: { name: `${layer.name}/${v.originalName.split('/').pop()}`, shape: v.shape as number[], dtype: 'float32' as const },
      variable: v,
    })),
  );
}

/** The model's trainable tensors (less the layers in `exclude`) as one flat vector with their specs. */
export function getTrainableWeights(model: tf.LayersModel, exclude: readonly string[] = []): Weights {
  const entries = trainableEntries(model, exclude);
  const size = specsSize(entries.map((e) => e.spec));
  const values = new Float32Array(size);
  let off = 0;
  for (const e of entries) {
    const data = e.variable.read().dataSync() as Float32Array;
    values.set(data, off);
    off += data.length;
  }
  return { specs: entries.map((e) => e.spec), values };
}

/**
 * Writes a flat weight vector into the model's trainable tensors (less the layers in `exclude`, which
 * keep their values).
 *
 * @throws FtlError(WEIGHTS_MISMATCH) naming the first tensor whose name or shape differs.
 */
export function setTrainableWeights(model: tf.LayersModel, weights: Weights, exclude: readonly string[] = []): void {
  const entries = trainableEntries(model, exclude);
  assertSameSpecs(weights.specs, entries.map((e) => e.spec));
  let off = 0;
  for (const e of entries) {
    const n = shapeSize(e.spec.shape);
    const t = tf.tensor(weights.values.subarray(off, off + n), e.spec.shape, 'float32');
    e.variable.write(t);
    t.dispose();
    off += n;
  }
}
