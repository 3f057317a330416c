import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as tf from '@tensorflow/tfjs';
import { ErrorCode, FtlError, loadBackbone, MODEL_JSON, readModelSource } from '@ftl/shared';
import { readBackboneMeta } from './backbone-meta.js';

/** The folder of the backbones committed with ftl, one folder (model.json, weights, ftl-backbone.json) per name. */
export const BACKBONES_DIR = fileURLToPath(new URL('../backbones', import.meta.url));

/**
 * Names of committed backbones that keep a folder of their own outside {@link BACKBONES_DIR}: the first,
 * small backbone stays where the coordinator has always read it.
 */
const ELSEWHERE: Readonly<Record<string, string>> = {
  'small-fmnist': fileURLToPath(new URL('../backbone', import.meta.url)),
};

/** What a backbone name looks like: one path segment of letters, digits, dots, dashes and underscores. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The committed backbones by name, sorted, each with its folder: every folder of `dir` that holds a
 * model.json, and the names kept elsewhere (such as `small-fmnist`, the first backbone).
 *
 * @example
 * (await backboneCatalog()).map((b) => b.name); // ['encoder-fmnist', 'encoder-fmnist-0to4', 'small-fmnist']
 */
export async function backboneCatalog(dir: string = BACKBONES_DIR): Promise<Array<{ name: string; dir: string }>> {
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch {
    // No catalog folder: only the names kept elsewhere.
  }
  const found = new Map(Object.entries(ELSEWHERE));
  for (const name of entries) {
    if (NAME.test(name) && (await isFile(join(dir, name, MODEL_JSON)))) found.set(name, join(dir, name));
  }
  return [...found].map(([name, folder]) => ({ name, dir: folder })).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Where a `--backbone` source is: an http(s) or file: address, or a path that exists, is used as it is; a
 * bare name (one path segment, such as `encoder-fmnist`) is the folder of that committed backbone. A path
 * that exists wins over a name, so folders given by name before names existed keep working.
 *
 * @throws FtlError(BACKBONE_LOAD) in one line listing the known names, for a bare name that is neither a
 *   path nor a committed backbone.
 * @example
 * await resolveBackboneSource('encoder-fmnist'); // '…/packages/coordinator/backbones/encoder-fmnist'
 * await resolveBackboneSource('https://example.org/model/'); // unchanged
 */
export async function resolveBackboneSource(source: string, dir: string = BACKBONES_DIR): Promise<string> {
  if (/^(https?|file):/i.test(source) || !NAME.test(source) || (await exists(source))) return source;
  const catalog = await backboneCatalog(dir);
  const named = catalog.find((b) => b.name === source);
  if (named !== undefined) return named.dir;
  throw new FtlError(
    ErrorCode.BackboneLoad,
    `unknown backbone "${source}": the committed backbones are ${catalog.map((b) => b.name).join(', ')}; or give a folder path or an http(s) address`,
  );
}

/** A committed backbone as the table in docs/results.md shows it, read from its files. */
export interface BackboneSummary {
  name: string;
  /** The layers up to the feature layer, e.g. `conv 3×3/2 16+BN → … → global average pool`. */
  architecture: string;
  /** Parameters up to the feature layer (batch-normalisation statistics included). */
  encoderParameters: number;
  /** Parameters of a 10-class linear head on the features. */
  linearHead10: number;
  /** Values per image at the feature layer. */
  embedding: number;
  /** Fashion-MNIST classes pretrained on (`all` for the ten). */
  sourceClasses: string;
  /** Accuracy on the held-out source images, as a fraction. */
  testAccuracy?: number;
  trainingSeconds?: number;
  command?: string;
}

/** `all` for every Fashion-MNIST class (or none named), else the indices. */
function allOrSome(classes: readonly number[] | undefined): string {
  return classes === undefined || (classes.length === 10 && classes.every((c, i) => c === i)) ? 'all' : classes.join(',');
}

/** A layer, briefly: convolutions with kernel, stride and filters; a batch normalisation joins the layer before it. */
function layerText(layer: tf.layers.Layer): string | undefined {
  const c = layer.getConfig() as { kernelSize?: number[]; strides?: number[]; filters?: number; units?: number };
  switch (layer.getClassName()) {
    case 'Conv2D': {
      const stride = c.strides?.[0] ?? 1;
      return `conv ${c.kernelSize?.[0]}×${c.kernelSize?.[1]}${stride > 1 ? `/${stride}` : ''} ${c.filters}`;
    }
    case 'Dense':
      return `dense ${c.units}`;
    case 'Flatten':
      return 'flatten';
    case 'GlobalAveragePooling2D':
      return 'global average pool';
    case 'MaxPooling2D':
      return 'max pool';
    default:
      return undefined;
  }
}

/**
 * Summaries of the committed backbones (see {@link backboneCatalog}), each loaded and cut where its
 * description says: architecture and sizes from the model, how it was made from `ftl-backbone.json`.
 */
export async function summarizeBackbones(dir: string = BACKBONES_DIR): Promise<BackboneSummary[]> {
  const rows: BackboneSummary[] = [];
  for (const { name, dir: folder } of await backboneCatalog(dir)) {
    const meta = (await readBackboneMeta(folder)) as Awaited<ReturnType<typeof readBackboneMeta>> & { source?: { classes?: number[] } };
    const fx = await loadBackbone(await readModelSource(folder), { feature: meta.featureLayer, where: folder });
    try {
      if (fx.kind !== 'layers') continue;
      const model = fx.model;
      const parts: string[] = [];
      for (const layer of model.layers) {
        if (layer.getClassName() === 'BatchNormalization' && parts.length > 0) parts[parts.length - 1] += '+BN';
        const text = layerText(layer);
        if (text !== undefined && !(text === 'flatten' && parts.at(-1) === 'flatten')) parts.push(text);
      }
      const { source } = meta;
      rows.push({
        name,
        architecture: parts.join(' → '),
        encoderParameters: model.countParams(),
        linearHead10: fx.featureDim * 10 + 10,
        embedding: fx.featureDim,
        sourceClasses: allOrSome(source?.classes),
        ...(source ? { testAccuracy: source.testAccuracy, trainingSeconds: source.trainingSeconds } : {}),
        ...(meta.command !== undefined ? { command: meta.command } : {}),
      });
    } finally {
      fx.dispose();
    }
  }
  return rows;
}

/** The summaries as a markdown table, the one docs/results.md shows (`npm run pretrain -- --list`). */
export function backboneTable(rows: readonly BackboneSummary[]): string {
  const n = (v: number) => v.toLocaleString('en-US');
  const lines = [
    '| name | architecture (to the features) | encoder parameters | 10-class linear head | embedding | source classes | source held-out accuracy | pretraining seconds | command |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${[
          r.name,
          r.architecture,
          n(r.encoderParameters),
          n(r.linearHead10),
          String(r.embedding),
          r.sourceClasses,
          r.testAccuracy === undefined ? '–' : `${(r.testAccuracy * 100).toFixed(2)}%`,
          r.trainingSeconds === undefined ? '–' : r.trainingSeconds.toFixed(0),
          r.command === undefined ? '–' : `\`${r.command}\``,
        ].join(' | ')} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
