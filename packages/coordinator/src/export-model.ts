import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  backboneLayersOf,
  EXPORT_BACKBONE_DIR,
  EXPORT_HEAD_DIR,
  EXPORT_META_FILE,
  createFineTunedModel,
  createHead,
  disposeFineTunedModel,
  ErrorCode,
  FtlError,
  modelDigest,
  saveLayersModelToFolder,
  setTrainableWeights,
  writeModelFiles,
  type HeadConfig,
  type ModelFile,
  type Weights,
} from '@ftl/shared';
import type { ServedBackbone } from './backbone-server.js';

// The export's layout is shared with its reader, loadExportedModel in @ftl/shared (which a site loads
// exports with, without the coordinator); re-exported here for the coordinator's users.
export { EXPORT_BACKBONE_DIR, EXPORT_HEAD_DIR, EXPORT_META_FILE, loadExportedModel, type ExportedModel } from '@ftl/shared';

/**
 * Writes the global model: backbone (cut at `featureLayer`, default the backbone's) + trained head.
 *
 * - A **layers** backbone and the head become one TensorFlow.js layers model folder (`model.json`,
 *   `weights.bin`) that `tf.loadLayersModel` loads and that predicts class probabilities from images.
 *   When `weights` also hold backbone layers (fine-tuning: `conv2/kernel`, …), the export carries those
 *   federated values in place of the pretrained ones; the served backbone itself is never modified.
 * - A **graph** backbone cannot be joined to a layers head, so the export holds both side by side:
 *   `backbone/` (the backbone's files as served), `head/` (a layers model from features to class
 *   probabilities) and a `README.md` showing how to chain them; {@link loadExportedModel} does that.
 *
 * Either way `ftl-model.json` holds `meta` plus `sha256` (the digest of the model files; for a graph export,
 * of both folders' files by their paths) and, for a graph export, `kind: "graph"` and the chaining details.
 */
export async function exportGlobalModel(options: {
  backbone: ServedBackbone;
  /** The run's cut point, when it is not the backbone's own. */
  featureLayer?: string;
  head: HeadConfig;
  weights: Weights;
  dir: string;
  meta: Record<string, unknown>;
  /** Head layers the clients kept for themselves: exported with their initial values. */
  localLayers?: readonly string[];
  /**
   * The run's federated input normalisation, (x − shift) / scale per channel or per value. A layers
   * export computes it in its first layer, so it takes raw inputs; a graph export records it in
   * `ftl-model.json` for {@link loadExportedModel}.
   */
  inputNormalization?: { shift: number[]; scale: number[] };
}): Promise<{ digest: string }> {
  const fx = options.backbone.extractor.at(options.featureLayer ?? options.backbone.featureLayer);
  const trained = backboneLayersOf(options.weights.specs);
  if (fx.kind === 'graph') {
    if (trained.length > 0) {
      throw new FtlError(
        ErrorCode.WeightsMismatch,
        `the weights hold backbone layers (${trained.join(', ')}) but the backbone is a graph model, which cannot take them`,
      );
    }
    return exportChained(options, fx.feature, fx.featureDim, fx.inputShape);
  }
  // The backbone's own (frozen) layers up to the trained ones, then copies that take the federated values.
  const model = createFineTunedModel(fx, trained.length, options.head, 0);
  const norm = options.inputNormalization;
  const normalizing = norm ? normalizationLayer(norm) : undefined;
  try {
    setTrainableWeights(model, options.weights, options.localLayers);
    const { digest } = await saveLayersModelToFolder(normalizing ? withLayerInFront(model, normalizing, norm!.shift.length) : model, options.dir);
    await writeMeta(options.dir, { ...options.meta, ...(norm ? { inputNormalization: norm, inputNormalizationInModel: true } : {}), sha256: digest });
    return { digest };
  } finally {
    normalizing?.dispose();
    disposeFineTunedModel(model, fx);
  }
}

/**
 * (x − shift) / scale as a standard layer that any TensorFlow.js loader reads: a frozen 1×1 depthwise
 * convolution with kernel 1/scale and bias −shift/scale, one channel per statistic.
 */
function normalizationLayer(norm: { shift: number[]; scale: number[] }): tf.layers.Layer {
  const n = norm.shift.length;
  return tf.layers.depthwiseConv2d({
    name: 'ftl_input_normalization',
    kernelSize: 1,
    useBias: true,
    trainable: false,
    weights: [
      tf.tensor4d(
        norm.scale.map((s) => 1 / s),
        [1, 1, n, 1],
      ),
      tf.tensor1d(norm.shift.map((m, i) => -m / norm.scale[i]!)),
    ],
  });
}

/**
 * `model` with `layer` applied to its input first. Statistics per channel apply to the image as it is;
 * statistics per value (tabular scope) apply to it flattened onto the channel axis and reshaped back.
 */
function withLayerInFront(model: tf.LayersModel, layer: tf.layers.Layer, statistics: number): tf.LayersModel {
  const shape = model.inputs[0]!.shape.slice(1) as number[];
  const input = tf.input({ shape, name: 'ftl_input' });
  const perChannel = statistics === shape.at(-1);
  let x = perChannel ? input : (tf.layers.reshape({ targetShape: [1, 1, statistics] }).apply(input) as tf.SymbolicTensor);
  x = layer.apply(x) as tf.SymbolicTensor;
  if (!perChannel) x = tf.layers.reshape({ targetShape: shape }).apply(x) as tf.SymbolicTensor;
  return tf.model({ name: 'ftl_global_model', inputs: input, outputs: model.apply(x) as tf.SymbolicTensor });
}

/** A graph backbone's export: its files and the head as two folders, with how to chain them. */
async function exportChained(
  options: Parameters<typeof exportGlobalModel>[0],
  featureNode: string,
  featureDim: number,
  inputShape: [number, number, number],
): Promise<{ digest: string }> {
  const { backbone, dir } = options;
  await writeModelFiles(join(dir, EXPORT_BACKBONE_DIR), backbone.files);
  const head = createHead(options.head, 0);
  setTrainableWeights(head, options.weights, options.localLayers);
  const saved = await saveLayersModelToFolder(head, join(dir, EXPORT_HEAD_DIR));
  head.dispose();
  const under = (folder: string, files: readonly ModelFile[]) => files.map((f) => ({ name: `${folder}/${f.name}`, bytes: f.bytes }));
  const digest = modelDigest([...under(EXPORT_BACKBONE_DIR, backbone.files), ...under(EXPORT_HEAD_DIR, saved.files)]);
  const chain = {
    kind: 'graph',
    backbone: { path: EXPORT_BACKBONE_DIR, format: 'graph-model', featureNode, inputShape, featureDim, sha256: backbone.sha256 },
    head: { path: EXPORT_HEAD_DIR, format: 'layers-model', inputShape: [featureDim], sha256: saved.digest },
  };
  const norm = options.inputNormalization ? { inputNormalization: options.inputNormalization } : {};
  await writeMeta(dir, { ...options.meta, ...norm, sha256: digest, ...chain });
  await writeFile(join(dir, 'README.md'), chainReadme(featureNode, featureDim, inputShape, options.inputNormalization !== undefined));
  return { digest };
}

function writeMeta(dir: string, meta: Record<string, unknown>): Promise<void> {
  return writeFile(join(dir, EXPORT_META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
}

function chainReadme(featureNode: string, featureDim: number, [h, w, c]: [number, number, number], normalized: boolean): string {
  return `# ftl global model: graph backbone + head

The backbone is a TensorFlow.js graph model, which cannot be joined to the trained head (a layers model)
into one model, so the two sit side by side:

- \`${EXPORT_BACKBONE_DIR}/\`: the frozen backbone exactly as the coordinator served it; the features are the
  output of its node \`${featureNode}\`, flattened to ${featureDim} values per image.
- \`${EXPORT_HEAD_DIR}/\`: the head, from [batch, ${featureDim}] features to class probabilities.
- \`${EXPORT_META_FILE}\`: classes (in output order), the run's rounds and metrics, and these details.

To predict from images [batch, ${h}, ${w}, ${c}] (float32, as the clients fed them${
    normalized
      ? `; this run normalised them federatedly, so first compute (x − shift) / scale with \`inputNormalization\` from \`${EXPORT_META_FILE}\``
      : ''
  }):

\`\`\`js
const backbone = await tf.loadGraphModel('${EXPORT_BACKBONE_DIR}/model.json'); // a URL or an IO handler
const head = await tf.loadLayersModel('${EXPORT_HEAD_DIR}/model.json');
const probs = tf.tidy(() => {
  const f = backbone.execute(images, '${featureNode}');
  return head.predict(f.reshape([f.shape[0], -1]));
});
\`\`\`

In ftl, \`loadExportedModel(dir)\` from \`@ftl/client\` (or \`@ftl/shared\`, \`@ftl/coordinator\`) does this for both kinds of export.
`;
}
