import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, normalize, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ErrorCode, FtlError } from '../errors.js';

/** The file name of a TensorFlow.js model's topology and weights manifest. */
export const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

/** One file of a model folder, by its name relative to the folder. */
export interface ModelFile {
  name: string;
  bytes: Uint8Array;
}

const dtypeBytes: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, string: 0 };

/**
 * SHA-256 of a model folder's files: each file's name, byte length and bytes, in name order, so the
 * digest does not depend on the order the files were read or fetched in.
 */
export function modelDigest(files: readonly ModelFile[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    h.update(`${f.name}\0${f.bytes.byteLength}\0`);
    h.update(f.bytes);
  }
  return h.digest('hex');
}

/** How to fix a backbone source that is not a model, appended to the messages below. */
const SOURCE_HINT = 'a backbone is a folder (or http(s) address) holding a TensorFlow.js model.json and the weight files it names';

/**
 * Parses and checks a `model.json`: valid JSON with a `modelTopology` object and a `weightsManifest` whose
 * groups each list `paths` (file names) and `weights` (specs).
 *
 * @throws FtlError(BACKBONE_LOAD) saying which part is malformed.
 */
export function parseModelJson(bytes: Uint8Array, where: string): tf.io.ModelJSON {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new FtlError(ErrorCode.BackboneLoad, `${where}/${MODEL_JSON} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const j = json as Partial<tf.io.ModelJSON> | null;
  if (typeof j !== 'object' || j === null || typeof j.modelTopology !== 'object' || j.modelTopology === null || !Array.isArray(j.weightsManifest)) {
    throw new FtlError(ErrorCode.BackboneLoad, `${where}/${MODEL_JSON} is not a TensorFlow.js model: it needs "modelTopology" and "weightsManifest"`);
  }
  j.weightsManifest.forEach((group: unknown, i) => {
    const g = group as Partial<tf.io.WeightsManifestConfig[number]> | null;
    const ok =
      typeof g === 'object' &&
      g !== null &&
      Array.isArray(g.paths) &&
      g.paths.every((p) => typeof p === 'string') &&
      Array.isArray(g.weights) &&
      g.weights.every((w) => typeof w?.name === 'string' && Array.isArray(w.shape) && typeof w.dtype === 'string');
    if (!ok) {
      throw new FtlError(
        ErrorCode.BackboneLoad,
        `${where}/${MODEL_JSON}: weightsManifest[${i}] must have "paths" (weight file names) and "weights" ({name, shape, dtype} each); ` +
          'the file is damaged or was not written by a TensorFlow.js converter',
      );
    }
  });
  return j as tf.io.ModelJSON;
}

/** The two kinds of TensorFlow.js model ftl loads. */
export type ModelKind = 'layers' | 'graph';

/**
 * Whether a `model.json` holds a layers model or a graph model: its `format` when set, else the shape of
 * its topology (a Keras config, or a GraphDef with `node`s).
 *
 * @throws FtlError(BACKBONE_LOAD) when it is neither.
 */
export function modelKind(modelJson: tf.io.ModelJSON, where: string): ModelKind {
  const topology = modelJson.modelTopology as Record<string, unknown>;
  if (modelJson.format === 'layers-model' || (modelJson.format === undefined && ('class_name' in topology || 'model_config' in topology))) {
    return 'layers';
  }
  if (modelJson.format === 'graph-model' || (modelJson.format === undefined && Array.isArray(topology['node']))) return 'graph';
  throw new FtlError(
    ErrorCode.BackboneLoad,
    `${where}/${MODEL_JSON} is neither a layers model nor a graph model (format ${JSON.stringify(modelJson.format ?? null)}); ` +
      'ftl loads what tfjs-converter or model.save() write: format "layers-model" or "graph-model"',
  );
}

/** The parsed `model.json` among model files. */
export function modelJsonOf(files: readonly ModelFile[], where: string): tf.io.ModelJSON {
  const json = files.find((f) => f.name === MODEL_JSON);
  if (json === undefined) throw new FtlError(ErrorCode.BackboneLoad, `${where} has no ${MODEL_JSON}; ${SOURCE_HINT}`);
  return parseModelJson(json.bytes, where);
}

/** Weight shard paths named in a model.json, checked to stay inside the model folder. */
export function weightPaths(modelJson: tf.io.ModelJSON): string[] {
  return modelJson.weightsManifest.flatMap((group) =>
    group.paths.map((p) => {
      const clean = normalize(p);
      if (clean.startsWith('..') || clean.startsWith(sep) || clean !== basename(clean)) {
        throw new FtlError(ErrorCode.BackboneLoad, `weight path "${p}" must be a plain file name inside the model folder`);
      }
      return clean;
    }),
  );
}

/**
 * Reads a model folder's `model.json` and the weight shards it names (not other files).
 *
 * @throws FtlError(BACKBONE_LOAD) naming the missing or malformed file.
 */
export async function readModelFolder(dir: string): Promise<ModelFile[]> {
  const read = async (name: string, hint: string) => {
    try {
      return new Uint8Array(await readFile(join(dir, name)));
    } catch (err) {
      throw new FtlError(ErrorCode.BackboneLoad, `cannot read ${join(dir, name)}: ${(err as Error).message}; ${hint}`, { cause: err });
    }
  };
  const json = await read(MODEL_JSON, SOURCE_HINT);
  const files: ModelFile[] = [{ name: MODEL_JSON, bytes: json }];
  for (const p of weightPaths(parseModelJson(json, dir))) {
    files.push({ name: p, bytes: await read(p, `${MODEL_JSON} names it in its weightsManifest: copy the complete model folder`) });
  }
  return files;
}

/**
 * An IO handler that loads a model from files already in memory (read from a folder or downloaded),
 * checking that the weight shards exist and that their size matches the manifest.
 */
export function filesLoadHandler(files: readonly ModelFile[], where: string): tf.io.IOHandler {
  return {
    load: async () => {
      const byName = new Map(files.map((f) => [f.name, f.bytes]));
      const modelJson = modelJsonOf(files, where);
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs = manifest.flatMap((g) => g.weights);
        const shards = manifest.flatMap((g) =>
          g.paths.map((p) => {
            const bytes = byName.get(normalize(p));
            if (bytes === undefined) {
              throw new FtlError(
                ErrorCode.BackboneLoad,
                `${where}: weight file "${p}" is missing; ${MODEL_JSON} names it in its weightsManifest, so copy or serve the complete model folder`,
              );
            }
            return bytes;
          }),
        );
        const total = shards.reduce((s, b) => s + b.byteLength, 0);
        const expected = specs.reduce((s, w) => {
          const per = w.quantization
            ? w.quantization.dtype === 'float16'
              ? 2
              : w.quantization.dtype === 'uint16'
                ? 2
                : 1
            : (dtypeBytes[w.dtype] ?? 4);
          return s + per * w.shape.reduce((a, b) => a * b, 1);
        }, 0);
        if (total !== expected) {
          throw new FtlError(
            ErrorCode.BackboneLoad,
            `${where}: weight files hold ${total} bytes but ${MODEL_JSON} describes ${expected}; the folder is corrupt or from another model ` +
              `(${manifest.flatMap((g) => g.paths).join(', ')}): copy or download the model again`,
          );
        }
        const data = new Uint8Array(total);
        let off = 0;
        for (const b of shards) {
          data.set(b, off);
          off += b.byteLength;
        }
        return [specs, data.buffer];
      });
    },
  };
}

/**
 * Loads a layers model from a folder without tfjs-node (which would bring `file://`).
 *
 * @example
 * const model = await loadLayersModelFromFolder('packages/coordinator/backbone');
 */
export async function loadLayersModelFromFolder(dir: string): Promise<tf.LayersModel> {
  const files = await readModelFolder(dir);
  return loadLayersModelFromFiles(files, dir);
}

/** Loads a layers model from in-memory model files. */
export function loadLayersModelFromFiles(files: readonly ModelFile[], where: string): Promise<tf.LayersModel> {
  return loadingAs('layers', where, () => tf.loadLayersModel(filesLoadHandler(files, where)));
}

/**
 * Loads a graph model (a GraphDef converted by tfjs-converter) from in-memory model files: the same
 * checks as {@link loadLayersModelFromFiles}.
 */
export function loadGraphModelFromFiles(files: readonly ModelFile[], where: string): Promise<tf.GraphModel> {
  return loadingAs('graph', where, () => tf.loadGraphModel(filesLoadHandler(files, where)));
}

/** Runs a tfjs loader, turning its errors (other than the handler's own FtlErrors) into one that names the source. */
async function loadingAs<T>(kind: ModelKind, where: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof FtlError) throw err;
    throw new FtlError(ErrorCode.BackboneLoad, `${where} is not a loadable TensorFlow.js ${kind} model: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Writes model files into `dir` (created if needed). */
export async function writeModelFiles(dir: string, files: readonly ModelFile[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const f of files) await writeFile(join(dir, f.name), f.bytes);
}

/**
 * Saves a layers model as `model.json` plus one `weights.bin` in `dir`: the format
 * `tf.loadLayersModel` reads. Returns the files written and their digest.
 */
export async function saveLayersModelToFolder(model: tf.LayersModel, dir: string): Promise<{ files: ModelFile[]; digest: string }> {
  let files: ModelFile[] = [];
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      files = [
        { name: MODEL_JSON, bytes: new Uint8Array(Buffer.from(JSON.stringify(modelJson))) },
        { name: WEIGHTS_BIN, bytes: new Uint8Array(weightData) },
      ];
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  await writeModelFiles(dir, files);
  return { files, digest: modelDigest(files) };
}
