import * as tf from '@tensorflow/tfjs';
import { ErrorCode, FtlError } from '../errors.js';
import type { ImageDataset } from '../data/dataset.js';
import { eventLoopYielder } from '../event-loop.js';
import { tfjsSeed } from '../random.js';
import { loadGraphModelFromFiles, loadLayersModelFromFiles, MODEL_JSON, modelJsonOf, modelKind, type ModelFile } from './model-folder.js';

/** Where the default backbone's features are taken: the flattened output of its last convolution. */
export const DEFAULT_FEATURE_LAYER = 'features';

/**
 * The default backbone's architecture: two strided convolutions (`filters[0]` filters 5×5, `filters[1]`
 * filters 3×3, default 16 and 32) give 5×5×`filters[1]` features, then a 64-unit dense layer and the
 * source task's softmax. Seeded initialisers make pretraining repeatable.
 */
export function createDefaultBackbone(options: { seed: number; classes: number; filters?: [number, number] }): tf.Sequential {
  const { seed, classes } = options;
  const [f1, f2] = options.filters ?? [16, 32];
  const model = tf.sequential({ name: 'ftl_backbone' });
  model.add(
    tf.layers.conv2d({
      name: 'conv1',
      inputShape: [28, 28, 1],
      filters: f1,
      kernelSize: 5,
      strides: 2,
      activation: 'relu',
      kernelInitializer: tf.initializers.heNormal({ seed: tfjsSeed(seed) }),
    }),
  );
  model.add(
    tf.layers.conv2d({
      name: 'conv2',
      filters: f2,
      kernelSize: 3,
      strides: 2,
      activation: 'relu',
      kernelInitializer: tf.initializers.heNormal({ seed: tfjsSeed(seed + 1) }),
    }),
  );
  model.add(tf.layers.flatten({ name: DEFAULT_FEATURE_LAYER }));
  model.add(
    tf.layers.dense({
      name: 'fc',
      units: 64,
      activation: 'relu',
      kernelInitializer: tf.initializers.heNormal({ seed: tfjsSeed(seed + 2) }),
    }),
  );
  model.add(sourceLogits(classes, seed + 3));
  return model;
}

/**
 * The pretraining task's softmax, `source_logits`, the last layer of every backbone ftl builds: it only
 * serves pretraining, and a head on the features takes its place. `seed` makes its initial weights repeatable.
 */
export function sourceLogits(classes: number, seed: number): tf.layers.Layer {
  return tf.layers.dense({
    name: 'source_logits',
    units: classes,
    activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: tfjsSeed(seed) }),
  });
}

/** Shape text for messages: `[-1,28,28,1]` reads as `[batch, 28, 28, 1]`. */
function showShape(shape: readonly (number | null)[] | undefined): string {
  return shape === undefined
    ? 'unknown'
    : `[${shape.map((d, i) => (i === 0 && (d === null || d < 0) ? 'batch' : d === null || d < 0 ? '?' : String(d))).join(', ')}]`;
}

/** Names for a message: the first `max`, then how many more. */
function listNames(names: readonly string[], max = 25): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} … and ${names.length - max} more`;
}

interface ExtractorBase {
  /** The layer (layers model) or node (graph model) whose output is the feature vector. */
  feature: string;
  /** Length of one feature vector. */
  featureDim: number;
  /** [height, width, channels] the backbone takes. */
  inputShape: [number, number, number];
  /**
   * Images `[batch, h, w, c]` → features `[batch, featureDim]` (a spatial output comes flattened). The
   * caller disposes both tensors.
   */
  extract(images: tf.Tensor4D): tf.Tensor2D;
  /**
   * The same backbone read at another layer or node, sharing its weights (computed once per feature).
   * @throws FtlError(BACKBONE_LOAD) as the loader does for an unusable feature.
   */
  at(feature: string): FeatureExtractor;
  /** Frees the backbone's weights, for this extractor and every one `at` gave; all are unusable afterwards. */
  dispose(): void;
}

/** A layers-model backbone cut at a layer. */
export interface LayersFeatureExtractor extends ExtractorBase {
  kind: 'layers';
  /** The backbone up to the feature layer (output flattened), frozen: a layers model a head can be built on. */
  model: tf.LayersModel;
  at(feature: string): LayersFeatureExtractor;
}

/** A graph-model backbone read at a node: a frozen feature extractor that cannot be trained or extended. */
export interface GraphFeatureExtractor extends ExtractorBase {
  kind: 'graph';
  model: tf.GraphModel;
  at(feature: string): GraphFeatureExtractor;
}

/** Runs `free` once, however many views of a backbone call it. */
function once(free: () => void): () => void {
  let done = false;
  return () => {
    if (!done) free();
    done = true;
  };
}

/** `make` memoised per feature name. */
function perFeature<T>(make: (feature: string) => T): (feature: string) => T {
  const made = new Map<string, T>();
  return (feature) => {
    if (!made.has(feature)) made.set(feature, make(feature));
    return made.get(feature)!;
  };
}

/**
 * A frozen backbone that maps images to flat feature vectors: a layers model cut at a layer or a graph
 * model read at a node. Use `extract` (or {@link extractFeatures} for a whole dataset) for either kind;
 * only a layers backbone can be combined with a head into one model.
 */
export type FeatureExtractor = LayersFeatureExtractor | GraphFeatureExtractor;

/**
 * Cuts `backbone` at `layerName` (flattening a spatial output) and freezes it. `dispose()` frees
 * `backbone` itself, whose weights the cut (and every cut `at` gives) shares.
 *
 * @throws FtlError(BACKBONE_LOAD) listing the layer names when `layerName` does not exist, and when the
 *   backbone does not take one fixed-size image input or the layer gives no fixed-size feature vector.
 */
export function featureExtractor(backbone: tf.LayersModel, layerName: string): LayersFeatureExtractor {
  const views: Pick<LayersFeatureExtractor, 'at' | 'dispose'> = {
    dispose: once(() => backbone.dispose()),
    at: perFeature((f: string) => cutLayers(backbone, f, views)),
  };
  return views.at(layerName);
}

function cutLayers(backbone: tf.LayersModel, layerName: string, views: Pick<LayersFeatureExtractor, 'at' | 'dispose'>): LayersFeatureExtractor {
  const layer = backbone.layers.find((l) => l.name === layerName);
  if (layer === undefined) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `backbone has no layer "${layerName}"; its layers are: ${backbone.layers.map((l) => l.name).join(', ')}`,
    );
  }
  const inShape = backbone.inputs[0]?.shape;
  if (backbone.inputs.length !== 1 || inShape === undefined || inShape.length !== 4 || inShape.slice(1).some((d) => d === null)) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `backbone must take one image input [batch, height, width, channels] of a fixed size (got ${backbone.inputs.map((i) => showShape(i.shape)).join(' and ')})`,
    );
  }
  if (Array.isArray(layer.output)) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `layer "${layerName}" has ${layer.output.length} outputs; pick a layer with one output as the feature layer`,
    );
  }
  let output = layer.output as tf.SymbolicTensor;
  if (output.shape.length > 2) output = tf.layers.flatten().apply(output) as tf.SymbolicTensor;
  const featureDim = output.shape[1];
  if (output.shape.length !== 2 || typeof featureDim !== 'number') {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `layer "${layerName}" gives ${showShape(output.shape)}, not a fixed-size feature vector [batch, d]; pick a layer whose output has a fixed size`,
    );
  }
  const model = tf.model({ inputs: backbone.inputs, outputs: output });
  model.trainable = false;
  return {
    kind: 'layers',
    feature: layerName,
    model,
    featureDim,
    inputShape: inShape.slice(1) as [number, number, number],
    extract: (images) => model.predict(images) as tf.Tensor2D,
    ...views,
  };
}

/** A node of a GraphDef, as far as choosing a feature output needs it. */
interface GraphNode {
  name: string;
  op: string;
}

/** What a graph model's `model.json` tells about its nodes and named outputs (its signature). */
interface GraphTopology {
  nodes: readonly GraphNode[];
  /** Signature output keys (e.g. `feature_vector`) → tensor names. */
  outputs: Record<string, string>;
}

/**
 * Reads the nodes and signature of a graph model's GraphDef, checking what tfjs would otherwise trip over
 * with an obscure TypeError: nodes with a name and an op, and inputs that name nodes of the graph.
 */
function graphTopology(modelJson: tf.io.ModelJSON, where: string): GraphTopology {
  const damaged = (why: string) =>
    new FtlError(ErrorCode.BackboneLoad, `${where}/${MODEL_JSON}: ${why}; the GraphDef is damaged or was not written by tfjs-converter`);
  const nodes = (modelJson.modelTopology as { node?: unknown }).node;
  if (!Array.isArray(nodes) || !nodes.every((n) => typeof n?.name === 'string' && typeof n?.op === 'string')) {
    throw damaged('modelTopology.node must list the graph\'s nodes, each with a "name" and an "op"');
  }
  const names = new Set(nodes.map((n: GraphNode) => n.name));
  for (const n of nodes as Array<GraphNode & { input?: unknown }>) {
    for (const input of Array.isArray(n.input) ? n.input : []) {
      const source = String(input).replace(/^\^/, '').split(':')[0]!;
      if (!names.has(source)) throw damaged(`node "${n.name}" takes input "${String(input)}", which is not a node of the graph`);
    }
  }
  const signature = (modelJson.signature ?? (modelJson.userDefinedMetadata as { signature?: unknown } | undefined)?.signature) as
    | { outputs?: Record<string, { name?: unknown }> }
    | undefined;
  const outputs: Record<string, string> = {};
  for (const [key, value] of Object.entries(signature?.outputs ?? {})) if (typeof value?.name === 'string') outputs[key] = value.name;
  return { nodes: nodes as GraphNode[], outputs };
}

/** Reads a graph model at node `feature`, or at its single output when undefined. */
function graphFeatureExtractor(model: tf.GraphModel, topology: GraphTopology, feature: string | undefined, where: string): GraphFeatureExtractor {
  const views: Pick<GraphFeatureExtractor, 'at' | 'dispose'> = {
    dispose: once(() => model.dispose()),
    at: perFeature((f: string) => readGraph(model, topology, f, where, views)),
  };
  return views.at(feature ?? defaultGraphOutput(model, where));
}

/** A graph model's single output, the natural feature when none is named. */
function defaultGraphOutput(model: tf.GraphModel, where: string): string {
  if (model.outputs.length !== 1) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `${where} has ${model.outputs.length} outputs (${model.outputs.map((o) => o.name).join(', ')}); name the feature node`,
    );
  }
  return model.outputs[0]!.name;
}

/**
 * Checks that the model takes one fixed-size float image input and that the node exists and is computed
 * from it, then probes the node with a batch of two blank images to learn the feature size.
 */
function readGraph(
  model: tf.GraphModel,
  topology: GraphTopology,
  name: string,
  where: string,
  views: Pick<GraphFeatureExtractor, 'at' | 'dispose'>,
): GraphFeatureExtractor {
  const { nodes } = topology;
  const computed = nodes.filter((n) => n.op !== 'Const' && !n.op.startsWith('Placeholder')).map((n) => n.name);
  if (model.inputs.length !== 1) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `${where} takes ${model.inputs.length} inputs (${model.inputs.map((i) => i.name).join(', ')}); a backbone takes one image tensor`,
    );
  }
  const input = model.inputs[0]!;
  const shape = input.shape;
  if (shape === undefined || shape.length !== 4 || shape.slice(1).some((d) => d < 1)) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `${where}: input "${input.name}" has shape ${showShape(shape)}; a backbone takes images [batch, height, width, channels] ` +
        'with a fixed height, width and channels: convert the model with a fixed input shape',
    );
  }
  if (input.dtype !== undefined && input.dtype !== 'float32') {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `${where}: input "${input.name}" is ${input.dtype}; ftl feeds float32 images, so convert the model with a float32 input`,
    );
  }
  // A signature key (as TF Hub models have) names a tensor; execute() maps it itself.
  const tensorName = topology.outputs[name] ?? name;
  const nodeName = /^(.*):\d+$/.exec(tensorName)?.[1] ?? tensorName;
  const node = nodes.find((n) => n.name === nodeName);
  if (node === undefined) {
    throw new FtlError(ErrorCode.BackboneLoad, `${where} has no node "${name}"; its computed nodes are: ${listNames(computed)}`);
  }
  if (node.op === 'Const') {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `${where}: node "${name}" is a constant (a weight), not computed from the images; pick a node downstream of the input, such as ${listNames(computed.slice(-5))}`,
    );
  }
  const [h, w, c] = shape.slice(1) as [number, number, number];
  const run = (x: tf.Tensor4D) => {
    const y = model.execute(x, name) as tf.Tensor;
    return (y.rank > 2 ? y.reshape([y.shape[0]!, -1]) : y) as tf.Tensor2D;
  };
  let out: number[];
  try {
    out = tf.tidy(() => (model.execute(tf.zeros([2, h, w, c]), name) as tf.Tensor).shape);
  } catch (err) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `${where}: running the graph up to node "${name}" failed: ${(err as Error).message} ` +
        '(ftl runs graph models synchronously, so models with control flow or dynamic ops cannot be backbones)',
      { cause: err },
    );
  }
  if (out.length < 2 || out[0] !== 2) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `${where}: node "${name}" gives ${JSON.stringify(out)} for a batch of 2 images, not a feature vector [batch, d] ` +
        `(a spatial [batch, h, w, c] output is flattened); pick a node with one row per image, such as ${listNames(computed.slice(-5))}`,
    );
  }
  return {
    kind: 'graph',
    feature: name,
    model,
    featureDim: out.slice(1).reduce((a, b) => a * b, 1),
    inputShape: [h, w, c],
    extract: (images) => tf.tidy(() => run(images)),
    ...views,
  };
}

/**
 * Loads a backbone from its model files (read from a folder or downloaded, see `readModelSource`),
 * whichever kind `model.json` holds:
 * - a **layers model** is cut at the layer `feature` (default {@link DEFAULT_FEATURE_LAYER});
 * - a **graph model** is a frozen feature extractor read at the node `feature` (`name` or `name:k`;
 *   default: its single output), run synchronously.
 * Either way an output of rank > 2 (a convolution's `[batch, h, w, c]`) is flattened to `[batch, d]`.
 * `where` names the source in error messages.
 *
 * @throws FtlError(BACKBONE_LOAD) for a missing or malformed model.json, a missing weight file, weights
 *   whose size differs from the manifest, an unknown layer or node, or an output that is no feature vector.
 * @example
 * const fx = await loadBackbone(await readModelSource('https://example.org/mnet/model.json'), { feature: 'pool/Mean', where: 'mnet' });
 * const features = fx.extract(images); // [batch, fx.featureDim]
 */
export async function loadBackbone(files: readonly ModelFile[], options: { feature?: string; where: string }): Promise<FeatureExtractor> {
  const { where } = options;
  const modelJson = modelJsonOf(files, where);
  if (modelKind(modelJson, where) === 'layers') {
    const model = await loadLayersModelFromFiles(files, where);
    try {
      return featureExtractor(model, options.feature ?? DEFAULT_FEATURE_LAYER);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }
  const topology = graphTopology(modelJson, where);
  const model = await loadGraphModelFromFiles(files, where);
  try {
    return graphFeatureExtractor(model, topology, options.feature, where);
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/**
 * Checks that images of `dataShape` ([height, width, channels]) fit a backbone taking `inputShape`
 * ([height, width, channels]; `null` or a negative size takes any), naming both shapes when they do not.
 *
 * @throws FtlError(DATASET) saying which shapes differ and how to reconcile them.
 * @example
 * assertInputCompatible(fx.inputShape, [ds.height, ds.width, ds.channels]);
 */
export function assertInputCompatible(inputShape: readonly (number | null)[], dataShape: readonly number[]): void {
  const fits = inputShape.length === dataShape.length && inputShape.every((d, i) => d === null || d < 0 || d === dataShape[i]);
  if (!fits) {
    const show = (s: readonly (number | null)[]) => s.map((d) => (d === null || d < 0 ? '?' : String(d))).join('x');
    throw new FtlError(
      ErrorCode.Dataset,
      `the backbone takes ${show(inputShape)} images (height x width x channels) but the data are ${show(dataShape)}; ` +
        `resize the images or convert grayscale/RGB to ${show(inputShape)}, or choose a backbone whose input is ${show(dataShape)}`,
    );
  }
}

/**
 * Runs every image of `ds` through the extractor in batches; returns `n × featureDim` features. Gives the
 * event loop a turn between batches now and then, so a connected client keeps answering pings, and
 * reports the images done after each batch to `onProgress`.
 *
 * @throws FtlError(DATASET) when the images do not fit the backbone's input shape.
 */
export async function extractFeatures(
  fx: FeatureExtractor,
  ds: ImageDataset,
  o: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<Float32Array> {
  assertInputCompatible(fx.inputShape, [ds.height, ds.width, ds.channels]);
  const batchSize = o.batchSize ?? 256;
  const { height: h, width: w, channels: c } = ds;
  const out = new Float32Array(ds.n * fx.featureDim);
  const size = h * w * c;
  const breathe = eventLoopYielder();
  for (let start = 0; start < ds.n; start += batchSize) {
    const count = Math.min(batchSize, ds.n - start);
    const x = tf.tensor4d(ds.images.subarray(start * size, (start + count) * size), [count, h, w, c]);
    const feats = fx.extract(x);
    x.dispose();
    out.set(feats.dataSync() as Float32Array, start * fx.featureDim);
    feats.dispose();
    o.onProgress?.(start + count, ds.n);
    await breathe();
  }
  return out;
}
