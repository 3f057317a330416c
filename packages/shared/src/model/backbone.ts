import * as tf from '@tensorflow/tfjs';
import { ErrorCode, FtlError } from '../errors.js';
import type { ImageDataset } from '../data/dataset.js';

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
  model.add(tf.layers.conv2d({
    name: 'conv1', inputShape: [28, 28, 1], filters: f1, kernelSize: 5, strides: 2, activation: 'relu',
    kernelInitializer: tf.initializers.heNormal({ seed }),
  }));
  model.add(tf.layers.conv2d({
    name: 'conv2', filters: f2, kernelSize: 3, strides: 2, activation: 'relu',
    kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }),
  }));
  model.add(tf.layers.flatten({ name: DEFAULT_FEATURE_LAYER }));
  model.add(tf.layers.dense({
    name: 'fc', units: 64, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: seed + 2 }),
  }));
  model.add(tf.layers.dense({
    name: 'source_logits', units: classes, activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 3 }),
  }));
  return model;
}

/** A frozen backbone cut at a layer: maps images to flat feature vectors. */
export interface FeatureExtractor {
  model: tf.LayersModel;
  /** Length of one feature vector. */
  featureDim: number;
  /** [height, width, channels] the backbone takes. */
  inputShape: [number, number, number];
}

/**
 * Cuts `backbone` at `layerName` (flattening a spatial output) and freezes it.
 *
 * @throws FtlError(BACKBONE_LOAD) listing the layer names when `layerName` does not exist.
 */
export function featureExtractor(backbone: tf.LayersModel, layerName: string): FeatureExtractor {
  const layer = backbone.layers.find((l) => l.name === layerName);
  if (layer === undefined) {
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `backbone has no layer "${layerName}"; its layers are: ${backbone.layers.map((l) => l.name).join(', ')}`,
    );
  }
  const inShape = backbone.inputs[0]?.shape;
  if (backbone.inputs.length !== 1 || inShape === undefined || inShape.length !== 4) {
    throw new FtlError(ErrorCode.BackboneLoad, `backbone must take one image input [batch, h, w, c] (got ${JSON.stringify(inShape)})`);
  }
  let output = layer.output as tf.SymbolicTensor;
  if (output.shape.length > 2) output = tf.layers.flatten().apply(output) as tf.SymbolicTensor;
  const featureDim = output.shape[1];
  if (typeof featureDim !== 'number') {
    throw new FtlError(ErrorCode.BackboneLoad, `layer "${layerName}" does not give a fixed-size feature vector`);
  }
  const model = tf.model({ inputs: backbone.inputs, outputs: output });
  model.trainable = false;
  return { model, featureDim, inputShape: inShape.slice(1) as [number, number, number] };
}

/**
 * Runs every image of `ds` through the extractor in batches; returns `n × featureDim` features.
 *
 * @throws FtlError(DATASET) when the images do not have the backbone's input shape.
 */
export function extractFeatures(fx: FeatureExtractor, ds: ImageDataset, batchSize = 256): Float32Array {
  const [h, w, c] = fx.inputShape;
  if (ds.height !== h || ds.width !== w || ds.channels !== c) {
    throw new FtlError(
      ErrorCode.Dataset,
      `images are ${ds.height}×${ds.width}×${ds.channels} but the backbone takes ${h}×${w}×${c}`,
    );
  }
  const out = new Float32Array(ds.n * fx.featureDim);
  const size = h * w * c;
  for (let start = 0; start < ds.n; start += batchSize) {
    const count = Math.min(batchSize, ds.n - start);
    const feats = tf.tidy(() => {
      const x = tf.tensor4d(ds.images.subarray(start * size, (start + count) * size), [count, h, w, c]);
      return fx.model.predict(x) as tf.Tensor;
    });
    out.set(feats.dataSync() as Float32Array, start * fx.featureDim);
    feats.dispose();
  }
  return out;
}
