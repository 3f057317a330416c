import * as tf from '@tensorflow/tfjs';
import { tfjsSeed } from '../random.js';
import { assertSameSpecs, shapeSize, specsSize, type WeightSpec, type Weights } from '../codec/weights.js';
import { ErrorCode, FtlError } from '../errors.js';

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
 * The most trainable values ftl builds into one model (head plus unfrozen backbone layers): 50 M float32
 * values are 200 MB, and training holds several copies (weights, gradients, Adam moments), so anything
 * larger would take the process's memory before it could train. Real heads are far smaller (the default
 * is about 100 k values).
 */
export const MAX_MODEL_PARAMETERS = 50_000_000;

/**
 * The head's trainable values (kernels and biases of its dense layers), computed from its configuration
 * alone: no tensor is made, so a size can be checked before anything is allocated.
 *
 * @example
 * headParameterCount({ featureDim: 800, hidden: [128], classes: 10 }); // 800·128 + 128 + 128·10 + 10 = 103,818
 */
export function headParameterCount(head: HeadConfig): number {
  let inputs = head.featureDim;
  let count = 0;
  for (const units of [...head.hidden, head.classes]) {
    count += inputs * units + units;
    inputs = units;
  }
  return count;
}

/**
 * Refuses a model of `count` trainable values above {@link MAX_MODEL_PARAMETERS}, or a count that is no
 * finite number (a malformed size), before any of it is allocated.
 *
 * @throws FtlError(INVALID_CONFIG) naming the count, the limit and what to change.
 */
export function assertModelSize(count: number, what: string): void {
  if (Number.isFinite(count) && count >= 0 && count <= MAX_MODEL_PARAMETERS) return;
  throw new FtlError(
    ErrorCode.InvalidConfig,
    `${what} would have ${Number.isFinite(count) ? count.toLocaleString('en-US') : String(count)} trainable values, above the limit of ` +
      `${MAX_MODEL_PARAMETERS.toLocaleString('en-US')}; use fewer or smaller hidden layers (hidden), fewer classes, or fewer unfrozen ` +
      'backbone layers (fineTuning.layers)',
  );
}

/** A head size that tfjs cannot build: every size must be a positive whole number. */
function assertHeadShape(config: HeadConfig): void {
  const sizes: Array<[string, number]> = [['featureDim', config.featureDim], ...config.hidden.map((u, i): [string, number] => [`hidden[${i}]`, u]), ['classes', config.classes]];
  const bad = sizes.find(([, n]) => !Number.isSafeInteger(n) || n < 1);
  if (bad) throw new FtlError(ErrorCode.InvalidConfig, `head ${bad[0]} must be a positive integer (got ${String(bad[1])}); fix the run's hidden sizes or classes`);
}

/**
 * Builds the head's layers (not yet connected), named `head_hidden_<i>`, `head_dropout_<i>` (no weights,
 * seeded) and `head_output`. The wire carries the dense layers' tensors only.
 *
 * @throws FtlError(INVALID_CONFIG) for a size that is no positive integer, or a head above
 * {@link MAX_MODEL_PARAMETERS}, before any weight exists.
 */
export function createHeadLayers(config: HeadConfig, seed: number): tf.layers.Layer[] {
  assertHeadShape(config);
  assertModelSize(headParameterCount(config), 'the head');
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
 * @throws FtlError(INVALID_CONFIG) for a head above {@link MAX_MODEL_PARAMETERS}, before any weight exists.
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
