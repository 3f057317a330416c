import * as tf from '@tensorflow/tfjs';
import type { ImageDataset } from '../data/dataset.js';
import { ErrorCode, FtlError } from '../errors.js';
import { assertInputCompatible, extractFeatures, type LayersFeatureExtractor } from './backbone.js';
import { shapeSize } from '../codec/weights.js';
import { deriveSeed, tfjsSeed } from '../random.js';
import { ALL_BACKBONE_LAYERS, layerOfTensor } from './fine-tuning.js';
import { assertModelSize, createHeadLayers, headParameterCount, isHeadLayer, type HeadConfig } from './head.js';

/**
 * Where a run that trains the top `unfrozen.length` backbone layers splits a layers backbone: everything
 * up to `boundary` is frozen (clients cache its output), the layers above it up to the cut train with the head.
 */
export interface FineTuningPlan {
  /** The run's cut (feature layer). */
  cut: string;
  /** Backbone layers with weights that train, bottom → top (empty: head only). */
  unfrozen: string[];
  /** The highest frozen layer, whose (flattened) output clients cache; the input layer when every layer below the cut trains. */
  boundary: string;
  /** True when `boundary` is the backbone's input: the cached "features" are the images themselves. */
  boundaryIsInput: boolean;
  /** Shape of the boundary output without the batch dimension, e.g. [12, 12, 16]. */
  boundaryShape: number[];
  /** Its flattened size: what the trainable network takes. */
  inputDim: number;
}

/**
 * Where the trainable backbone layers start: from the backbone's pretrained values (transfer), or from
 * their own initialisers, seeded (training from scratch: the same network without the transfer).
 */
export type BackboneInit = 'pretrained' | 'random';

/** A trainable network on cached boundary features: [batch, inputDim] → class probabilities. */
export interface TrainableNetwork {
  plan: FineTuningPlan;
  model: tf.LayersModel;
}

interface Walk {
  plan: FineTuningPlan;
  /** The backbone's own layers above the boundary up to the cut, bottom → top. */
  above: tf.layers.Layer[];
  /** The boundary's symbolic output in the backbone's graph. */
  boundaryOutput: tf.SymbolicTensor;
}

const isInputLayer = (layer: tf.layers.Layer) => layer.getClassName() === 'InputLayer';

/** The one layer feeding `layer`; fine-tuning follows a chain of single-input layers down from the cut. */
function inboundOf(layer: tf.layers.Layer): tf.layers.Layer {
  const nodes = layer.inboundNodes;
  const inbound = nodes.length === 1 ? nodes[0]!.inboundLayers : [];
  if (inbound.length !== 1) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `backbone layer "${layer.name}" takes ${nodes.length === 1 ? inbound.length : `${nodes.length} calls of`} inputs; ftl unfreezes only a chain of ` +
        'single-input layers below the cut: unfreeze fewer layers (fineTuning.layers) or cut higher (featureLayer)',
    );
  }
  return inbound[0]!;
}

function outputOf(layer: tf.layers.Layer): tf.SymbolicTensor {
  return layer.inboundNodes[0]!.outputTensors[0]!;
}

/**
 * Walks down from the cut until `count` layers with weights are above the boundary; with
 * {@link ALL_BACKBONE_LAYERS} down to the input.
 */
function walk(fx: LayersFeatureExtractor, count: number): Walk {
  const all = count === ALL_BACKBONE_LAYERS;
  const cut = fx.feature;
  const cutLayer = fx.model.layers.find((l) => l.name === cut);
  if (cutLayer === undefined) throw new FtlError(ErrorCode.BackboneLoad, `backbone has no layer "${cut}"`);
  const above: tf.layers.Layer[] = [];
  const unfrozen: string[] = [];
  let layer = cutLayer;
  while (unfrozen.length < count) {
    if (isInputLayer(layer)) {
      if (all) break;
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `fineTuning.layers is ${count} but the backbone has only ${unfrozen.length} layers with weights below the cut "${cut}"` +
          `${unfrozen.length ? ` (${[...unfrozen].reverse().join(', ')})` : ''}; unfreeze at most ${unfrozen.length}`,
      );
    }
    if (isHeadLayer(layer.name) || layer.name.startsWith('ftl_')) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `backbone layer "${layer.name}" would clash with ftl's own layer names (head_*, ftl_*); rename it to fine-tune it`,
      );
    }
    above.unshift(layer);
    if (layer.weights.length > 0) unfrozen.unshift(layer.name);
    layer = inboundOf(layer);
  }
  if (all && unfrozen.length === 0) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `the backbone has no layers with weights below the cut "${cut}", so there is nothing to train from scratch; cut higher (featureLayer)`,
    );
  }
  const boundaryOutput = outputOf(layer);
  const boundaryShape = boundaryOutput.shape.slice(1) as number[];
  if (boundaryShape.some((d) => d === null || d < 1)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `backbone layer "${layer.name}" has no fixed output size (${JSON.stringify(boundaryOutput.shape)}); its output cannot be cached`,
    );
  }
  const inputDim = count === 0 ? fx.featureDim : boundaryShape.reduce((a, b) => a * b, 1);
  return {
    plan: {
      cut,
      unfrozen,
      boundary: layer.name,
      boundaryIsInput: isInputLayer(layer),
      boundaryShape: count === 0 ? [fx.featureDim] : boundaryShape,
      inputDim,
    },
    above,
    boundaryOutput,
  };
}

/**
 * Where the top `count` backbone layers with weights (counted down from the cut, the cut included) train:
 * the unfrozen layers and the frozen boundary below them. {@link ALL_BACKBONE_LAYERS} trains every one of
 * them, on the images themselves.
 *
 * @throws FtlError(INVALID_CONFIG) when the backbone has fewer such layers, or the layers are no chain.
 * @example
 * planFineTuning(fx, 1); // default backbone cut at "features": unfrozen ["conv2"], boundary "conv1" ([12, 12, 16])
 */
export function planFineTuning(fx: LayersFeatureExtractor, count: number): FineTuningPlan {
  return walk(fx, count).plan;
}

/**
 * A layer configuration whose seedable initialisers (`kernelInitializer`, … with a `seed` field) are
 * seeded from `seed`, one seed per initialiser, so a re-initialised layer is the same on every run.
 */
function seedInitializers(config: tf.serialization.ConfigDict, seed: number): void {
  let k = 0;
  for (const [key, value] of Object.entries(config)) {
    if (!key.endsWith('Initializer') || value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    const inner = (value as { config?: unknown }).config;
    if (inner === null || typeof inner !== 'object' || !('seed' in inner)) continue;
    config[key] = { ...value, config: { ...inner, seed: tfjsSeed(deriveSeed(seed, ++k)) } } as tf.serialization.ConfigDictValue;
  }
}

/**
 * A fresh copy of a backbone layer (same class and configuration), trainable, not yet built; with `seed`
 * its initialisers are seeded (a from-scratch layer), otherwise the caller copies the pretrained values in.
 */
function cloneLayer(layer: tf.layers.Layer, seed?: number): tf.layers.Layer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[layer.getClassName()];
  if (entry === undefined) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `backbone layer "${layer.name}" is a ${layer.getClassName()}, which tfjs cannot rebuild; keep it frozen`,
    );
  }
  const config = { ...layer.getConfig(), trainable: true } as tf.serialization.ConfigDict;
  delete config['batchInputShape'];
  delete config['inputShape'];
  if (seed !== undefined) seedInitializers(config, seed);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config) as tf.layers.Layer;
}

const isBatchNorm = (layer: tf.layers.Layer) => layer.getClassName() === 'BatchNormalization';

/**
 * Makes a built copy of a batch-normalisation layer trainable without any state to federate: it always
 * normalises with its stored statistics (inference mode, also while training), and those are set to 0
 * and 1 with the pretrained statistics folded into its scale and offset, so it computes exactly what the
 * pretrained layer computes (a fresh layer starts as the identity). Only its scale and offset train and
 * travel; the statistics are the same constants on every site, in the global model and in the export.
 * Batch statistics are never used, so a network trained from scratch trains without them.
 */
function freezeStatistics(copy: tf.layers.Layer, pretrained?: tf.layers.Layer): void {
  const config = copy.getConfig();
  if (config['scale'] === false || config['center'] === false) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `backbone layer "${copy.name}" is a batch normalisation without ${config['scale'] === false ? 'scale' : 'center'}, whose statistics ` +
        'cannot be folded into it; ftl does not federate batch statistics, so keep it frozen (fewer fineTuning.layers, or a higher cut)',
    );
  }
  const eps = config['epsilon'] as number;
  const find = (layer: tf.layers.Layer, part: string) => layer.weights.find((v) => v.originalName.endsWith(`/${part}`))!;
  const values = tf.tidy(() => {
    const [gamma, beta, mean, variance] = ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((part) => find(pretrained ?? copy, part).read());
    // y = γ (x − μ) / √(σ² + ε) + β = γ′ x / √(1 + ε) + β′ with μ = 0, σ² = 1 stored.
    const k = gamma!.div(variance!.add(eps).sqrt());
    // A plain object: tidy keeps the tensors of a returned object, not of a Map.
    const folded: Record<string, tf.Tensor> = {
      gamma: pretrained ? k.mul(Math.sqrt(1 + eps)) : gamma!.clone(),
      beta: pretrained ? beta!.sub(k.mul(mean!)) : beta!.clone(),
      moving_mean: tf.zerosLike(mean!),
      moving_variance: tf.onesLike(variance!),
    };
    return folded;
  });
  copy.setWeights(copy.weights.map((v) => values[v.originalName.split('/').pop()!]!));
  tf.dispose(Object.values(values));
  const call = copy.call.bind(copy);
  copy.call = (inputs, kwargs) => call(inputs, { ...kwargs, training: false });
}

/**
 * Applies copies of the backbone layers above the boundary (with their pretrained weights, or freshly
 * initialised from `seed` for `random`; the backbone itself never changes), a flatten when the cut is
 * spatial, then the head. Batch-normalisation copies keep their statistics frozen ({@link freezeStatistics}).
 */
function stackAbove(x: tf.SymbolicTensor, w: Walk, head: HeadConfig, seed: number, init: BackboneInit): tf.SymbolicTensor {
  w.above.forEach((layer, j) => {
    // One seed per layer, apart from the head's (seed + i): the head is the transfer run's, whatever the backbone.
    const copy = cloneLayer(layer, init === 'random' ? deriveSeed(seed, 0x5c4a7c, j) : undefined);
    x = copy.apply(x) as tf.SymbolicTensor;
    if (isBatchNorm(copy)) freezeStatistics(copy, init === 'pretrained' ? layer : undefined);
    else if (init === 'pretrained') copy.setWeights(layer.getWeights());
    if (!isBatchNorm(copy) && copy.weights.length > 0 && copy.nonTrainableWeights.length > 0) {
      const state = copy.nonTrainableWeights.map((v) => v.originalName).join(', ');
      throw new FtlError(
        ErrorCode.InvalidConfig,
        init === 'random'
          ? `backbone layer "${layer.name}" keeps non-trainable state (${state}), which ftl does not federate, so it cannot be trained from ` +
              'scratch; use a backbone without such layers (layer normalisation keeps none), or a mode that keeps it frozen'
          : `backbone layer "${layer.name}" keeps non-trainable state (${state}), ` +
              'which ftl does not federate; unfreeze fewer layers (fineTuning.layers) so that it stays frozen',
      );
    }
  });
  if (x.shape.length > 2) x = tf.layers.flatten({ name: 'ftl_flatten' }).apply(x) as tf.SymbolicTensor;
  // The head is sized by what it is applied to, so its size check counts what will really be built.
  for (const layer of createHeadLayers({ ...head, featureDim: x.shape[1] as number }, seed)) x = layer.apply(x) as tf.SymbolicTensor;
  return x;
}

/** Values of a backbone layer that its trainable copy trains: all its weights but a batch norm's statistics, which stay constants. */
function trainedValues(layer: tf.layers.Layer): number {
  const constant = (v: tf.LayerVariable) => isBatchNorm(layer) && /\/moving_(mean|variance)$/.test(v.originalName);
  return layer.weights.filter((v) => !constant(v)).reduce((n, v) => n + shapeSize(v.shape as number[]), 0);
}

/** Trainable values of a walk: the unfrozen layers' (their pretrained weights exist already) plus the head's on the cut. */
function countOf(fx: LayersFeatureExtractor, w: Walk, head: HeadConfig): number {
  return w.above.reduce((n, layer) => n + trainedValues(layer), 0) + headParameterCount({ ...head, featureDim: fx.featureDim });
}

/**
 * The trainable values of the network {@link createTrainableNetwork} would build (the top `count` backbone
 * layers with weights, then the head on the cut), computed without building it: the message size of a
 * run's largest update is this × 4 bytes. `count` may be {@link ALL_BACKBONE_LAYERS} (training from
 * scratch: the same values, whatever they start from).
 *
 * @throws FtlError(INVALID_CONFIG) when the backbone has fewer such layers, as {@link planFineTuning}.
 * @example
 * trainableParameterCount(fx, 1, { featureDim: 800, hidden: [128], classes: 10 }); // conv2's 4,640 + the head's 103,818
 */
export function trainableParameterCount(fx: LayersFeatureExtractor, count: number, head: HeadConfig): number {
  return countOf(fx, walk(fx, count), head);
}

/**
 * The network a client trains: cached boundary features [batch, inputDim] → (unflatten) → copies of the
 * unfrozen backbone layers → cut (flattened) → head (seeded with `seed`). Its trainable tensors, in
 * order, are the unfrozen layers' then the head's: the run's tensors on the wire (`conv2/kernel`, …).
 * With `count` 0 it is the head alone, as {@link createHead} builds it. The backbone layers start
 * pretrained, or with `backbone: 'random'` from their own initialisers seeded by `seed` (same shapes,
 * same head, none of the pretrained values: training from scratch).
 *
 * @throws FtlError(INVALID_CONFIG) for a network above `MAX_MODEL_PARAMETERS`, before any tensor of it exists.
 * @example
 * const net = createTrainableNetwork(fx, 1, head, 0); // trains conv2 + head on conv1's cached output
 * const scratch = createTrainableNetwork(fx, ALL_BACKBONE_LAYERS, head, 7, { backbone: 'random' }); // conv1, conv2, head on images
 */
export function createTrainableNetwork(
  fx: LayersFeatureExtractor,
  count: number,
  head: HeadConfig,
  seed: number,
  options: { backbone?: BackboneInit } = {},
): TrainableNetwork {
  const w = walk(fx, count);
  assertModelSize(countOf(fx, w, head), 'the trainable network (unfrozen backbone layers and head)');
  const input = tf.input({ shape: [w.plan.inputDim], name: 'ftl_cached_features' });
  let x: tf.SymbolicTensor = input;
  if (count > 0 && w.plan.boundaryShape.length > 1) {
    x = tf.layers.reshape({ targetShape: w.plan.boundaryShape, name: 'ftl_unflatten' }).apply(x) as tf.SymbolicTensor;
  }
  const model = tf.model({ inputs: input, outputs: stackAbove(x, w, head, seed, options.backbone ?? 'pretrained'), name: 'ftl_trainable' });
  return { plan: w.plan, model };
}

/**
 * The whole model from images: the backbone's own frozen layers up to the boundary, then copies of the
 * unfrozen layers and the head, as {@link createTrainableNetwork} has them (same trainable tensors, same
 * order; `backbone` as there). The export writes the federated tensors into it. Dispose it with {@link disposeFineTunedModel},
 * which frees only its own layers, never the backbone's.
 *
 * @throws FtlError(INVALID_CONFIG) for a model whose trainable part is above `MAX_MODEL_PARAMETERS`.
 */
export function createFineTunedModel(
  fx: LayersFeatureExtractor,
  count: number,
  head: HeadConfig,
  seed: number,
  options: { backbone?: BackboneInit } = {},
): tf.LayersModel {
  const w = walk(fx, count);
  assertModelSize(countOf(fx, w, head), 'the fine-tuned model (unfrozen backbone layers and head)');
  const start = count > 0 ? w.boundaryOutput : (fx.model.outputs[0] as tf.SymbolicTensor);
  return tf.model({ inputs: fx.model.inputs, outputs: stackAbove(start, w, head, seed, options.backbone ?? 'pretrained'), name: 'ftl_global_model' });
}

/** Frees the layers {@link createFineTunedModel} made, leaving the backbone's shared layers alone. */
export function disposeFineTunedModel(model: tf.LayersModel, fx: LayersFeatureExtractor): void {
  const shared = new Set(fx.model.layers);
  for (const layer of model.layers) if (!shared.has(layer) && layer.weights.length > 0) layer.dispose();
}

/**
 * A dataset's features at the plan's boundary, flattened: `[n × inputDim]`. At the input they are the
 * images themselves.
 *
 * @throws FtlError(DATASET) when the images do not fit the backbone.
 */
export async function boundaryFeatures(
  fx: LayersFeatureExtractor,
  plan: FineTuningPlan,
  data: ImageDataset,
  onProgress?: (done: number, total: number) => void,
): Promise<Float32Array> {
  if (plan.boundaryIsInput) {
    assertInputCompatible(fx.inputShape, [data.height, data.width, data.channels]);
    return data.images.slice();
  }
  return extractFeatures(fx.at(plan.boundary), data, onProgress ? { onProgress } : {});
}

/**
 * The backbone layers a weight list trains, in order: the layers of its tensors that are not head layers.
 * A client reads the round's trainable set from the weights it receives.
 */
export function backboneLayersOf(specs: ReadonlyArray<{ name: string }>): string[] {
  const out: string[] = [];
  for (const { name } of specs) {
    const layer = layerOfTensor(name);
    if (!isHeadLayer(layer) && !out.includes(layer)) out.push(layer);
  }
  return out;
}
