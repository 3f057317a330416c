import * as tf from '@tensorflow/tfjs';
import { tfjsSeed } from '../random.js';
import { assertSameSpecs, shapeSize, specsSize, type WeightSpec, type Weights } from '../codec/weights.js';
import { ErrorCode, FtlError } from '../errors.js';
import type { HeadConfig } from '../protocol/messages.js';

// The head's shape is part of `welcome`: its type comes from the protocol's schema.
export type { HeadConfig } from '../protocol/messages.js';

/** Every head layer's name starts with this; backbone layers may not (fine-tuning tells them apart by name). */
export const HEAD_LAYER_PREFIX = 'head_';

/** Whether a layer (or a wire tensor's layer part) belongs to the head rather than the backbone. */
export function isHeadLayer(name: string): boolean {
  return name.startsWith(HEAD_LAYER_PREFIX);
}

/**
 * The default head: linear, straight from the backbone's features to the classes. On the default encoder's
 * 256 features that is 2,570 values for ten classes, and the discriminant head (`headInit`) sets it before
 * round 1. A hidden layer (`hidden: [128]`) suits a backbone with few pretrained layers, such as `small-fmnist`.
 */
export const DEFAULT_HIDDEN: number[] = [];

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
  const sizes: Array<[string, number]> = [
    ['featureDim', config.featureDim],
    ...config.hidden.map((u, i): [string, number] => [`hidden[${i}]`, u]),
    ['classes', config.classes],
  ];
  const bad = sizes.find(([, n]) => !Number.isSafeInteger(n) || n < 1);
  if (bad)
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `head ${bad[0]} must be a positive integer (got ${String(bad[1])}); fix the run's hidden sizes or classes`,
    );
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
      name: `head_hidden_${i + 1}`,
      units,
      activation: 'relu',
      kernelInitializer: tf.initializers.heNormal({ seed: tfjsSeed(seed + i) }),
      ...(kernelRegularizer ? { kernelRegularizer } : {}),
    }),
    ...(config.dropout ? [tf.layers.dropout({ name: `head_dropout_${i + 1}`, rate: config.dropout, seed: tfjsSeed(seed + 100 + i) })] : []),
  ]);
  layers.push(
    tf.layers.dense({
      name: 'head_output',
      units: config.classes,
      activation: 'softmax',
      kernelInitializer: tf.initializers.glorotUniform({ seed: tfjsSeed(seed + config.hidden.length) }),
      ...(kernelRegularizer ? { kernelRegularizer } : {}),
    }),
  );
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
  return model.layers
    .filter((layer) => !exclude.includes(layer.name))
    .flatMap((layer) =>
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
  assertSameSpecs(
    weights.specs,
    entries.map((e) => e.spec),
  );
  let off = 0;
  for (const e of entries) {
    const n = shapeSize(e.spec.shape);
    const t = tf.tensor(weights.values.subarray(off, off + n), e.spec.shape, 'float32');
    e.variable.write(t);
    t.dispose();
    off += n;
  }
}

/**
 * Where a linear head's output kernel (`[featureDim, classes]`) and bias lie in `weights.values`: what a
 * head set from statistics (class means, a discriminant) writes. `what` and `why` name it in messages.
 *
 * @throws FtlError(INVALID_CONFIG) when the head has hidden layers; FtlError(WEIGHTS_MISMATCH) when it has
 * no output kernel or bias.
 */
export function linearOutputLayer(
  weights: Weights,
  what: string,
  why?: string,
): { kernel: { offset: number }; bias: { offset: number }; featureDim: number; classes: number } {
  if (weights.specs.some((s) => s.name.startsWith(`${HEAD_LAYER_PREFIX}hidden_`))) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `${what} needs a linear head (hidden: [])${why ? `: ${why}` : ''}; set hidden to [] or headInit to "random"`,
    );
  }
  const at = (name: string) => {
    let offset = 0;
    for (const s of weights.specs) {
      if (s.name === name) return { offset, shape: s.shape };
      offset += shapeSize(s.shape);
    }
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `the head has no tensor ${name}; ${what} sets ${HEAD_LAYER_PREFIX}output/kernel and ${HEAD_LAYER_PREFIX}output/bias`,
    );
  };
  const kernel = at(`${HEAD_LAYER_PREFIX}output/kernel`);
  const [featureDim, classes] = kernel.shape as [number, number];
  return { kernel, bias: at(`${HEAD_LAYER_PREFIX}output/bias`), featureDim, classes };
}

/**
 * The typical logit margin of a nearest-class-mean head: at a class mean, its class's logit exceeds a
 * typical other class's by this much (softmax ≈ 0.86 among ten classes). It scales the head without
 * changing which class it predicts, so training from it starts neither flat nor saturated.
 */
export const CLASS_MEAN_LOGIT_MARGIN = 4;

/**
 * A linear head's weights set to the nearest-class-mean classifier of `means` (FedNCM): output kernel
 * column c = 2α·μ_c and bias c = −α·‖μ_c‖², so the logits are α(‖x‖² − ‖x − μ_c‖²) and the predicted
 * class is the one whose mean is nearest in Euclidean distance (the ‖x‖² term is the same for every
 * class). α = margin / (mean squared distance between two class means) keeps the softmax well away from
 * saturation. Classes whose count is 0 keep their values in `weights` (the random initialisation). Every
 * other tensor (unfrozen backbone layers) is kept; `weights` itself is not changed.
 *
 * @param means classes × featureDim values, row-major (row c is the mean feature vector of class c).
 * @throws FtlError(INVALID_CONFIG) when the head has hidden layers: class means describe the features,
 * not a hidden layer's activations. FtlError(WEIGHTS_MISMATCH) when the sizes do not fit the head.
 *
 * @example
 * const head = classMeanHead(getTrainableWeights(createHead({ featureDim: 64, hidden: [], classes: 10 }, 1)), means, counts);
 */
export function classMeanHead(
  weights: Weights,
  means: Float32Array | Float64Array,
  counts: readonly number[],
  margin = CLASS_MEAN_LOGIT_MARGIN,
): Weights {
  const { kernel, bias, featureDim, classes } = linearOutputLayer(
    weights,
    'a class-mean head',
    'class means describe the features, not a hidden layer',
  );
  if (counts.length !== classes || means.length !== classes * featureDim) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `class means of ${counts.length} classes and ${means.length} values do not fit a head of ${classes} classes on ${featureDim} features`,
    );
  }
  const present = counts.flatMap((n, c) => (n > 0 ? [c] : []));
  // The mean squared distance between two different class means is 2·Σ‖μ_c − centroid‖² / (n − 1): O(classes × featureDim).
  const centroid = new Float64Array(featureDim);
  for (const c of present) for (let j = 0; j < featureDim; j++) centroid[j]! += means[c * featureDim + j]! / present.length;
  let spread = 0;
  for (const c of present) {
    for (let j = 0; j < featureDim; j++) spread += (means[c * featureDim + j]! - centroid[j]!) ** 2;
  }
  spread = (2 * spread) / Math.max(present.length - 1, 1);
  const alpha = present.length > 1 && spread > 0 && Number.isFinite(spread) ? margin / spread : 1;
  const values = weights.values.slice();
  for (const c of present) {
    let norm = 0;
    for (let j = 0; j < featureDim; j++) {
      const m = means[c * featureDim + j]!;
      values[kernel.offset + j * classes + c] = 2 * alpha * m;
      norm += m * m;
    }
    values[bias.offset + c] = -alpha * norm;
  }
  return { specs: weights.specs, values };
}
