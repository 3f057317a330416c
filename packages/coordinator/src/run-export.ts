import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { backboneLayersOf, type HeadConfig, type Normalization, type Weights } from '@ftl/shared';
import { encodedFeatureNames, type TableEncoding, type TableSpec } from '@ftl/shared';
import type { ServedBackbone } from './backbone-server.js';
import type { CoordinatorConfig } from './config.js';
import { exportGlobalModel } from './export-model.js';
import { stagingDir, swapInExport } from './export-swap.js';
import type { RoundRecord } from './round-table.js';
import type { RunContext } from './run-context.js';
import { MODEL_EXPORTED_EVENT } from './run-reuse.js';

/**
 * Writes a run's global model (backbone + head) as a TensorFlow.js folder with its description
 * (`ftl-model.json`); returns the model's digest.
 */
export async function exportRunModel(o: {
  backbone: ServedBackbone;
  config: CoordinatorConfig;
  head: HeadConfig;
  weights: Weights;
  dir: string;
  modelVersion: number;
  rounds: RoundRecord[];
  bestRound?: number;
  /** The run's federated input normalisation: a layers export applies it itself, a graph export records it. */
  normalization?: Normalization;
  /** A tabular run's encoding: the export records it with the columns, so whoever uses the model encodes rows the same way. */
  tableEncoding?: TableEncoding;
}): Promise<{ digest: string; outcome: 'replaced' | 'kept' }> {
  const { config } = o;
  const featureLayer = config.featureLayer ?? o.backbone.featureLayer;
  // Written beside the target and renamed into place: a crash never leaves half a model in `dir`, and a
  // more trained export of the same run already there is kept.
  const staging = stagingDir(o.dir);
  const { digest } = await exportGlobalModel({
    backbone: o.backbone,
    featureLayer,
    head: o.head,
    weights: o.weights,
    dir: staging,
    localLayers: config.localLayers,
    ...(o.normalization ? { inputNormalization: o.normalization } : {}),
    meta: {
      runId: config.runId,
      classes: config.classes,
      backboneSha256: o.backbone.sha256,
      featureLayer,
      strategy: config.strategy,
      localLayers: config.localLayers,
      modelVersion: o.modelVersion,
      rounds: o.rounds,
      ...(o.bestRound !== undefined ? { bestRound: o.bestRound } : {}),
      ...(config.table && o.tableEncoding ? { table: exportedTable(config.table, o.tableEncoding) } : {}),
      ...exportedPrivacy(config.privacy, o.rounds),
      ...(config.fineTuning.mode !== 'feature-extraction'
        ? { fineTuning: config.fineTuning, trainedBackboneLayers: backboneLayersOf(o.weights.specs) }
        : {}),
    },
  }).catch(async (err: unknown) => {
    await rm(staging, { recursive: true, force: true });
    throw err;
  });
  const outcome = await swapInExport(staging, o.dir, { runId: config.runId, modelVersion: o.modelVersion });
  return { digest, outcome };
}

/**
 * What a DP run's export says of its privacy, so whoever receives the model can tell what protects the
 * records it was trained on: the mechanism's settings as the run gave them, and the largest ε any site
 * reported over the rounds the model went through (`null` when no round recorded one). Empty for a run
 * without DP.
 */
export function exportedPrivacy(privacy: CoordinatorConfig['privacy'], rounds: readonly RoundRecord[]): { privacy?: Record<string, unknown> } {
  if (privacy.mode === 'none') return {};
  const spent = rounds.flatMap((r) => (r.epsilon !== undefined ? [r.epsilon] : []));
  return { privacy: { ...privacy, largestEpsilon: spent.length > 0 ? Math.max(...spent) : null } };
}

/**
 * Writes the run's global model (backbone + head) as a TensorFlow.js folder with its description, when some
 * round trained it: an untrained head is never exported, and a more trained export of this run already
 * in `dir` is kept. Returns whether `dir` holds this run's model now.
 */
export async function exportRun(ctx: RunContext, dir: string, records: RoundRecord[], bestRound?: number): Promise<boolean> {
  const { model, log } = ctx;
  if (model.version === 0) {
    log.warn('export-skipped', { dir, why: 'no round trained the model; whatever the folder holds is left as it is' });
    return false;
  }
  const { digest, outcome } = await exportRunModel({
    backbone: ctx.backbone,
    config: ctx.config,
    head: ctx.head,
    weights: model.weights,
    dir,
    modelVersion: model.version,
    rounds: records,
    ...(bestRound !== undefined ? { bestRound } : {}),
    ...(ctx.normalization ? { normalization: ctx.normalization } : {}),
    ...(ctx.tableEncoding ? { tableEncoding: ctx.tableEncoding } : {}),
  });
  if (outcome === 'kept') {
    log.warn('export-kept', { dir, why: 'the folder holds a more trained model of this run' });
  } else {
    log.info('exported', { dir, sha256: digest });
    // Where the model went, so a later start with the same run id can say it.
    ctx.store?.appendEvent(ctx.config.runId, MODEL_EXPORTED_EVENT, { dir: resolve(dir), modelVersion: model.version, sha256: digest });
  }
  return true;
}

/**
 * What a tabular run's export says of its inputs: the run's table (columns, k, scaling), the encoding it
 * fixed and the name of every value of the encoded row, so a row is encoded for the model as the sites did.
 */
export function exportedTable(spec: TableSpec, encoding: TableEncoding): { spec: TableSpec; encoding: TableEncoding; features: string[] } {
  return { spec, encoding, features: encodedFeatureNames(spec, encoding) };
}
