import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ErrorCode, FtlError } from '../errors.js';
import { loadBackbone } from './backbone.js';
import { loadLayersModelFromFolder, readModelFolder } from './model-folder.js';

/** Description written beside an exported model: what it predicts and how it was made. */
export const EXPORT_META_FILE = 'ftl-model.json';
/** Sub-folder of a graph backbone's export holding the backbone's files as served. */
export const EXPORT_BACKBONE_DIR = 'backbone';
/** Sub-folder of a graph backbone's export holding the head, a layers model from features to class probabilities. */
export const EXPORT_HEAD_DIR = 'head';

/** An exported global model, loaded: images in, class probabilities out. */
export interface ExportedModel {
  kind: 'layers' | 'graph';
  /** The run's label set in output order (`classes` of `ftl-model.json`): column k of `predict` is `classes[k]`. */
  classes: readonly string[];
  /** Images [batch, h, w, c] → class probabilities [batch, classes]; the caller disposes the result. */
  predict(images: tf.Tensor4D): tf.Tensor2D;
  dispose(): void;
}

/** The fields of `ftl-model.json` loading reads; the coordinator's exporter writes them. */
interface ExportMeta {
  kind?: string;
  classes?: unknown;
  backbone?: { featureNode?: string };
  inputNormalization?: { shift: number[]; scale: number[] };
  inputNormalizationInModel?: boolean;
}

/**
 * Loads an exported global model folder (what the coordinator writes to `--out`, or `runs export`
 * downloads), either kind: one layers model, or a graph backbone chained to its head. It reads the
 * files itself and hands them to TensorFlow.js through the project's IO handler, so it works on every
 * backend (cpu, wasm, tfjs-node) and never needs tfjs-node's `file://` loader.
 *
 * @throws FtlError(BACKBONE_LOAD) when the folder is not an ftl export or a model file is missing or damaged.
 * @example
 * const model = await loadExportedModel('.ftl/global-model');
 * const probs = model.predict(images); // [batch, model.classes.length]
 */
export async function loadExportedModel(dir: string): Promise<ExportedModel> {
  let meta: ExportMeta;
  try {
    meta = JSON.parse(await readFile(join(dir, EXPORT_META_FILE), 'utf8')) as ExportMeta;
  } catch (err) {
    throw new FtlError(ErrorCode.BackboneLoad, `${dir} is not an ftl export: cannot read ${EXPORT_META_FILE} (${(err as Error).message})`, {
      cause: err,
    });
  }
  const classes = Array.isArray(meta.classes) ? meta.classes.map(String) : [];
  const inner = await loadExportedParts(dir, meta, classes);
  const norm = meta.inputNormalization;
  if (!norm || meta.inputNormalizationInModel) return inner;
  // A run with federated normalisation trained on (x − shift) / scale: apply it, so predict takes raw images.
  const normalize = (images: tf.Tensor4D): tf.Tensor4D => {
    const shape = norm.shift.length === images.shape[3] ? [norm.shift.length] : images.shape.slice(1);
    return images.sub(tf.tensor(norm.shift, shape)).div(tf.tensor(norm.scale, shape));
  };
  return { ...inner, predict: (images) => tf.tidy(() => inner.predict(normalize(images))) };
}

async function loadExportedParts(dir: string, meta: ExportMeta, classes: readonly string[]): Promise<ExportedModel> {
  if (meta.kind !== 'graph') {
    const model = await loadLayersModelFromFolder(dir);
    return { kind: 'layers', classes, predict: (images) => model.predict(images) as tf.Tensor2D, dispose: () => model.dispose() };
  }
  const backboneDir = join(dir, EXPORT_BACKBONE_DIR);
  const fx = await loadBackbone(await readModelFolder(backboneDir), {
    ...(meta.backbone?.featureNode !== undefined ? { feature: meta.backbone.featureNode } : {}),
    where: backboneDir,
  });
  const head = await loadLayersModelFromFolder(join(dir, EXPORT_HEAD_DIR));
  return {
    kind: 'graph',
    classes,
    predict: (images) => tf.tidy(() => head.predict(fx.extract(images)) as tf.Tensor2D),
    dispose: () => {
      fx.dispose();
      head.dispose();
    },
  };
}
